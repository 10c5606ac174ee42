"""Frame store in one process: write once, view by reference, holds, slot reuse, stale refs."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from conveyor import ConfigurationError
from conveyor.transport import CameraSpec, FrameStore, FrameStoreFull, Ring, StaleFrameError
from conveyor.transport.framestore import resolve

SHAPE = (6, 8, 3)


@pytest.fixture
def store() -> Iterator[FrameStore]:
    with FrameStore.create(
        [CameraSpec("front", SHAPE, slots=3), CameraSpec("depth", (4, 4), "float32", slots=2)]
    ) as s:
        yield s


def frame(value: int) -> np.ndarray:
    return np.full(SHAPE, value, np.uint8)


def test_write_then_view_is_zero_copy_and_read_only(store: FrameStore) -> None:
    ref = store.write("front", frame(7), ts=12.5, index=3)
    view = store.view(ref)
    assert (view == 7).all() and not view.flags.writeable
    assert store.view(ref) is view, "resolving a reference must not build a new array"
    assert resolve(ref) is view
    assert store.timestamp(ref) == 12.5
    with pytest.raises(ValueError):
        view.flags.writeable = True


def test_cameras_have_their_own_shape_and_dtype(store: FrameStore) -> None:
    depth = np.arange(16, dtype=np.float32).reshape(4, 4)
    ref = store.write("depth", depth)
    np.testing.assert_array_equal(store.view(ref), depth)
    with pytest.raises(ConfigurationError, match=r"expected a \(4, 4\) float32 frame"):
        store.write("depth", np.zeros((4, 4), np.float64))
    with pytest.raises(ConfigurationError, match="unknown camera 'side'"):
        store.write("side", frame(1))


def test_held_slots_are_never_overwritten(store: FrameStore) -> None:
    refs = [store.write("front", frame(i)) for i in range(3)]  # every slot held by the writer
    with pytest.raises(FrameStoreFull):
        store.write("front", frame(99), timeout=0)
    for i, ref in enumerate(refs):
        assert (store.view(ref) == i).all()
    store.release(refs[1])
    new = store.write("front", frame(42), timeout=0)
    assert new.slot == refs[1].slot and new.generation > refs[1].generation
    assert (store.view(new) == 42).all()


def test_stale_reference_raises_instead_of_returning_other_pixels(store: FrameStore) -> None:
    old = store.write("front", frame(1))
    store.release(old)
    for i in range(3):  # wrap the camera's ring: old's slot is rewritten
        store.release(store.write("front", frame(10 + i)))
    with pytest.raises(StaleFrameError, match="stale"):
        store.view(old)
    with pytest.raises(StaleFrameError):
        store.retain(old)
    assert store.holds(old) == 0, "a refused retain must not leave a hold behind"


def test_claim_publish_and_abort(store: FrameStore) -> None:
    with store.claim("front") as slot:
        slot.array[:] = 5  # e.g. a decoder writing straight into shared memory
        ref = slot.publish(ts=1.0)
    assert (store.view(ref) == 5).all()
    slot = store.claim("front")
    slot.abort()
    assert store.occupancy("front") == 1  # only the published frame is held


def test_ring_messages_hold_their_frames_until_commit(store: FrameStore) -> None:
    with Ring(capacity=8192) as ring:
        w, r = ring.writer(), ring.reader()
        ref = store.write("front", frame(3))
        w.write({"frame": ref})
        store.release(ref)  # the writer's own hold is gone; the message's remains
        assert store.holds(ref) == 1
        msg = r.read(timeout=1)
        assert (store.view(msg.value["frame"]) == 3).all()
        msg.commit()
        assert store.holds(ref) == 0


def test_bad_specs_are_explained() -> None:
    with pytest.raises(ConfigurationError, match="positive sizes"):
        CameraSpec("a", (0, 4))
    with pytest.raises(ConfigurationError, match="at least 2 slots"):
        CameraSpec("a", (4, 4), slots=1)
    with pytest.raises(ConfigurationError, match="not a numpy dtype"):
        CameraSpec("a", (4, 4), dtype="pixels")
    with pytest.raises(ConfigurationError, match="unique"):
        FrameStore.create([CameraSpec("a", (2, 2)), CameraSpec("a", (2, 2))])
