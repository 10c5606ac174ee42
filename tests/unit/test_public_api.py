"""The public surface is exactly ``conveyor.__all__``, and every name in it exists."""

import conveyor
from conveyor import _errors


def test_all_names_exist_and_are_unique() -> None:
    assert len(set(conveyor.__all__)) == len(conveyor.__all__)
    for name in conveyor.__all__:
        assert hasattr(conveyor, name), name


def test_every_error_is_public_and_in_one_tree() -> None:
    errors = [v for v in vars(_errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    for exc in errors:
        assert issubclass(exc, conveyor.ConveyorError)
        assert exc.__name__ in conveyor.__all__, exc.__name__


def test_error_tree_shape() -> None:
    assert issubclass(conveyor.ConveyorTimeout, TimeoutError)
    assert issubclass(conveyor.ConfigurationError, ValueError)
    assert issubclass(conveyor.EncodeError, TypeError)
    for exc in (conveyor.ChannelClosed, conveyor.ChannelBroken, conveyor.EndOfChannel):
        assert issubclass(exc, conveyor.ChannelError)
    assert not issubclass(conveyor.ChannelClosed, conveyor.ChannelBroken)
    assert issubclass(conveyor.StaleFrameError, conveyor.FrameStoreError)
