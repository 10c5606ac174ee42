"""The public surface: ``conveyor.__all__`` is small and sorted, every name exists, every type
a run's result exposes is exported and documented, and the error tree is whole."""

import dataclasses
import typing

import conveyor
import conveyor.transport
from conveyor import _errors


def test_all_names_exist_are_unique_and_sorted() -> None:
    for module in (conveyor, conveyor.transport):
        assert module.__all__ == sorted(module.__all__)
        assert len(set(module.__all__)) == len(module.__all__)
        for name in module.__all__:
            assert hasattr(module, name), name


def test_the_user_api_is_small_and_transport_internals_are_not_in_it() -> None:
    assert len(conveyor.__all__) <= 40
    for name in ("Ring", "RingReader", "RingWriter", "Doorbell", "Message", "FrameStore"):
        assert name not in conveyor.__all__
        assert name in conveyor.transport.__all__


def test_every_error_is_public_and_in_one_tree() -> None:
    errors = [v for v in vars(_errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    for exc in errors:
        assert issubclass(exc, conveyor.ConveyorError)
        assert exc.__name__ in conveyor.__all__ or exc.__name__ in conveyor.transport.__all__


def test_every_type_a_result_exposes_is_exported_and_documented() -> None:
    seen: set[type] = set()

    def visit(tp: object) -> None:
        for arg in typing.get_args(tp):
            visit(arg)
        if not isinstance(tp, type) or tp in seen or tp.__module__ == "builtins":
            return
        if not tp.__module__.startswith("conveyor"):
            return
        seen.add(tp)
        assert tp.__name__ in conveyor.__all__, f"{tp.__name__} is exposed but not exported"
        assert (tp.__doc__ or "").strip(), f"{tp.__name__} has no docstring"
        if dataclasses.is_dataclass(tp):
            for hint in typing.get_type_hints(tp).values():
                visit(hint)

    visit(conveyor.RunResult)
    assert {conveyor.Restart, conveyor.DeadLetter, conveyor.Stats, conveyor.Plan} <= seen


def test_error_tree_shape() -> None:
    t = conveyor.transport
    assert issubclass(conveyor.ConveyorTimeout, TimeoutError)
    assert issubclass(conveyor.ConfigurationError, ValueError)
    assert issubclass(t.EncodeError, TypeError)
    for exc in (t.ChannelClosed, t.ChannelBroken, t.EndOfChannel):
        assert issubclass(exc, t.ChannelError)
    assert not issubclass(t.ChannelClosed, t.ChannelBroken)
    assert issubclass(t.StaleFrameError, t.FrameStoreError)
