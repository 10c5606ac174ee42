"""Ring channel in one process: wrap-around, full and empty, timeouts, oversize, redelivery."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from conveyor import ConfigurationError, ConveyorTimeout
from conveyor.transport import ChannelClosed, EndOfChannel, Ring, RingReader, RingWriter
from conveyor.transport.segment import leaked_segments


@pytest.fixture
def ring() -> Iterator[Ring]:
    with Ring(capacity=16 * 1024, max_items=64) as r:
        yield r


def test_messages_arrive_in_order_across_many_wraps(ring: Ring) -> None:
    w, r = ring.writer(), ring.reader()
    rng = np.random.default_rng(0)
    sent = 0
    for i in range(600):  # ~30x the ring: every record position and PAD case is hit
        arr = rng.integers(0, 255, rng.integers(0, 1500), dtype=np.uint8)
        w.write({"i": i, "a": arr})
        sent += 1
        if rng.random() < 0.7 or i == 599:
            while sent:
                msg = r.read(timeout=1)
                assert msg.value["i"] == i - sent + 1
                msg.commit()
                sent -= 1
    assert r.try_read() is None


def test_sequence_numbers_count_messages(ring: Ring) -> None:
    w, r = ring.writer(), ring.reader()
    for i in range(5):
        w.write(i)
    seqs = [r.read(timeout=1).seq for _ in range(5)]
    assert seqs == [0, 1, 2, 3, 4]


def test_full_by_items_and_by_bytes() -> None:
    with Ring(capacity=4096, max_items=3) as ring:
        w, r = ring.writer(), ring.reader()
        assert all(w.try_write(i) for i in range(3))
        assert not w.try_write(3), "max_items must bound the ring"
        r.read(timeout=1).commit()
        assert w.try_write(3)
    with Ring(capacity=4096, max_items=100) as ring:
        w = ring.writer()
        block = np.zeros(1000, np.uint8)
        written = 0
        while w.try_write(block):
            written += 1
        assert 2 <= written <= 4, "capacity in bytes must bound the ring"


def test_empty_read_returns_none_and_blocking_read_times_out(ring: Ring) -> None:
    r = ring.reader()
    ring.writer()
    assert r.try_read() is None
    with pytest.raises(ConveyorTimeout) as info:
        r.read(timeout=0.05)
    assert isinstance(info.value, TimeoutError)


def test_blocking_write_times_out_when_full() -> None:
    with Ring(capacity=4096, max_items=1) as ring:
        w = ring.writer()
        ring.reader()
        w.write("first")
        with pytest.raises(ConveyorTimeout):
            w.write("second", timeout=0.05)


def test_oversize_message_uses_an_overflow_segment_removed_on_commit(ring: Ring) -> None:
    w, r = ring.writer(), ring.reader()
    big = np.arange(ring.capacity, dtype=np.float64)  # 8x the ring
    w.write({"big": big, "tag": "x"})
    assert any(n.startswith(ring.name + "-ovf-") for n in leaked_segments())
    msg = r.read(timeout=1)
    np.testing.assert_array_equal(msg.value["big"], big)
    assert not msg.value["big"].flags.writeable
    del big
    msg.commit()
    assert not any(n.startswith(ring.name + "-ovf-") for n in leaked_segments())
    w.write("small after big")
    assert r.read(timeout=1).value == "small after big"


def test_views_are_read_only_and_cannot_be_made_writable(ring: Ring) -> None:
    w, r = ring.writer(), ring.reader()
    w.write(np.arange(10))
    arr = r.read(timeout=1).value
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr.flags.writeable = True


def test_uncommitted_reads_are_delivered_again_to_a_new_reader(ring: Ring) -> None:
    w, r = ring.writer(), ring.reader()
    for i in range(5):
        w.write(i)
    first = r.read(timeout=1)
    first.commit()
    assert [r.read(timeout=1).value for _ in range(3)] == [1, 2, 3]  # read, never committed
    replacement = RingReader(ring.name)  # as a restarted consumer would
    assert [replacement.read(timeout=1).value for _ in range(4)] == [1, 2, 3, 4]


def test_out_of_order_commit_frees_space_only_in_order() -> None:
    with Ring(capacity=4096, max_items=2) as ring:
        w, r = ring.writer(), ring.reader()
        w.write("a")
        w.write("b")
        a, b = r.read(timeout=1), r.read(timeout=1)
        b.commit()
        assert not w.try_write("c"), "b's commit must wait for a's"
        a.commit()
        assert w.try_write("c")
        assert RingReader(ring.name).read(timeout=1).value == "c"


def test_write_many_and_read_many(ring: Ring) -> None:
    w, r = ring.writer(), ring.reader()
    w.write_many(list(range(10)))
    batch = r.read_many(max_items=8, timeout=1)
    assert [m.value for m in batch] == list(range(8))
    r.commit_all(batch)
    rest = r.read_many(timeout=1)
    assert [m.value for m in rest] == [8, 9]


def test_closed_endpoint_raises_channel_closed(ring: Ring) -> None:
    w, r = ring.writer(), ring.reader()
    w.close()
    with pytest.raises(ChannelClosed):
        w.write(1)
    r.close()
    with pytest.raises(ChannelClosed):
        r.try_read()


def test_producer_close_drains_then_end_of_channel(ring: Ring) -> None:
    w, r = ring.writer(), ring.reader()
    w.write("last words")
    w.close()
    assert r.read(timeout=1).value == "last words"
    with pytest.raises(EndOfChannel):
        r.read(timeout=1)


def test_writer_sees_reader_closed(ring: Ring) -> None:
    w, r = ring.writer(), ring.reader()
    r.close()
    with pytest.raises(ChannelClosed, match="consumer"):
        w.write(1)


def test_bad_arguments_are_explained() -> None:
    with pytest.raises(ConfigurationError, match="multiple of 64"):
        Ring(capacity=1000)
    with pytest.raises(ConfigurationError, match="max_items"):
        Ring(capacity=4096, max_items=0)
    with pytest.raises(ConfigurationError, match="no shared-memory segment"):
        RingWriter("conveyor-1-ring-doesnotexist")


def test_segments_are_private_and_named_for_their_owner(ring: Ring) -> None:
    name = ring.name
    assert name.startswith(f"conveyor-{os.getpid()}-")
    mode = os.stat(f"/dev/shm/{name}").st_mode & 0o777
    assert mode == 0o600
    ring.close()
    assert name not in leaked_segments()


def test_no_system_call_while_the_reader_is_awake(ring: Ring) -> None:
    w, r = ring.writer(), ring.reader()
    for i in range(50):
        w.write(i)
        assert r.read(timeout=1).value == i  # the reader is awake: it never sleeps here
    assert w.consumer_bell.rings_sent == 0, "a write rang the doorbell of an awake reader"


def test_a_sleeping_reader_is_rung(ring: Ring, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.transport import doorbell

    monkeypatch.setattr(doorbell, "MAX_NAP", 30.0)  # no timed re-check: only a ring wakes it
    w, r = ring.writer(), ring.reader()
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(r.read(timeout=5, spin=0).value))
    t.start()
    deadline = time.monotonic() + 5
    while not r.consumer_bell._sleeping[0] and time.monotonic() < deadline:
        pass  # wait until the reader has announced that it sleeps
    w.write(7)
    t.join(5)
    assert got == [7] and w.consumer_bell.rings_sent == 1


def test_one_wait_covers_every_input_of_a_process() -> None:
    from conveyor.transport import Doorbell
    from conveyor.transport.ring import register_bell

    with Doorbell.create() as bell:
        register_bell(bell)
        with (
            Ring(capacity=4096, consumer_bell=bell.name) as a,
            Ring(capacity=4096, consumer_bell=bell.name) as b,
        ):
            ra, rb = a.reader(), b.reader()
            wb = b.writer()
            a.writer()
            ready = lambda: ra.has_data() or rb.has_data()  # noqa: E731
            assert not bell.wait(ready, timeout=0.05)
            wb.write("on b")
            assert bell.wait(ready, timeout=1)
            assert rb.read(timeout=1).value == "on b"


def test_a_replacement_writer_drops_writes_whose_origin_was_published() -> None:
    with Ring(capacity=16 * 1024, max_items=64) as ring:
        first = ring.writer()
        for origin in (11, 12, 13):
            first.write(f"m{origin}", origin=origin)
        first.try_write("unnumbered")  # origin 0: never deduplicated
        # The producer "dies"; its replacement replays 12 and 13 and goes on with 14.
        second = RingWriter(ring.name)
        for origin in (12, 13, 14):
            second.write(f"m{origin}", origin=origin)
        second.write("unnumbered")
        assert second.duplicates == 2
        reader = ring.reader()
        got = []
        while (msg := reader.try_read()) is not None:
            got.append(msg.value)
            msg.commit()
        assert got == ["m11", "m12", "m13", "unnumbered", "m14", "unnumbered"]
        reader.close()
        second.close()


@dataclass
class FrameMsg:
    camera: str
    index: int
    frame: np.ndarray
    boxes: np.ndarray


def test_arrays_read_again_at_one_position_show_the_new_message() -> None:
    """The reader keeps the array views it built per position: a later message at the same
    position must show its own pixels, in arrays of its own (reshaping one changes no other)."""
    with Ring(capacity=8 * 1024, max_items=16) as ring:
        w, r = ring.writer(), ring.reader()
        seen: dict[int, np.ndarray] = {}
        for i in range(40):  # ~3 records per lap: every position is used many times
            w.write(FrameMsg("cam", i, np.full((20, 30), i, np.uint8), np.full((5, 4), -i, "<f4")))
            msg = r.read(timeout=1)
            v = msg.value
            assert v.index == i and int(v.frame[7, 9]) == i and float(v.boxes[4, 3]) == -i
            assert not v.frame.flags.writeable and v.frame.shape == (20, 30)
            where = r._cursor % ring.capacity  # records have one size: the end names the place
            before = seen.get(where)
            if before is not None:
                assert before is not v.frame and before.shape == (30, 20)
                assert int(before[0, 0]) == i, "the same memory, seen through the old array"
            v.frame.shape = (30, 20)  # a caller's reshape stays in its own array
            seen[where] = v.frame
            msg.commit()
        assert len(seen) < 40, "positions were never reused: the test tests nothing"
