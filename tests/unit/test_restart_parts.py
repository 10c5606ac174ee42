"""Pure parts of restarting a replicated stage: the split's numbering and the merge's catch-up."""

from conveyor.runtime.heartbeat import Heartbeats
from conveyor.runtime.merge import Merger
from conveyor.runtime.numbering import SLOTS, SplitNumbers
from conveyor.transport import Ring, RingReader, RingWriter


def test_a_replacement_gives_replayed_origins_their_old_numbers() -> None:
    numbers = SplitNumbers.create(["split", "other"])
    try:
        first = numbers.numbering("split")
        assert [first.number(o) for o in (11, 12, 13)] == [0, 1, 2]
        assert numbers.numbering("other").number(99) == 0  # each task counts on its own
        again = SplitNumbers.attach(numbers.name, ["split", "other"]).numbering("split")
        # 12 and 13 are replayed (same numbers); 14 is new and goes on from the old counter
        assert [again.number(o) for o in (12, 13, 14)] == [1, 2, 3]
    finally:
        numbers.close()


def test_only_the_last_slots_numbers_are_remembered() -> None:
    numbers = SplitNumbers.create(["split"])
    try:
        first = numbers.numbering("split")
        for origin in range(1, SLOTS + 11):
            first.number(origin)
        again = numbers.numbering("split")
        assert again.number(SLOTS + 10) == SLOTS + 9  # recent: remembered
        assert again.number(5) == SLOTS + 10  # long gone: a new number
    finally:
        numbers.close()


def _ring_with(seqs: list[int]) -> tuple[Ring, RingReader]:
    ring = Ring(capacity=1 << 16)
    writer = RingWriter(ring.name)
    for seq in seqs:
        writer.write((seq + 100, seq, f"v{seq}"), origin=seq + 100)
    return ring, RingReader(ring.name)


def test_the_merge_moves_past_numbers_no_inlet_can_still_send() -> None:
    # After a restart the merge starts at 0, but 0 and 1 were delivered before the crash.
    (ring_a, a), (ring_b, b) = _ring_with([2, 4]), _ring_with([3, 5])
    try:
        merger = Merger([a, b])
        got = []
        while (item := merger.try_read()) is not None:
            got.append(item[0][1])
            item[1].drop()
        assert got == [2, 3, 4, 5]
    finally:
        ring_a.close()
        ring_b.close()


def test_the_merge_waits_while_an_open_inlet_shows_nothing() -> None:
    (ring_a, a), (ring_b, b) = _ring_with([2, 4]), _ring_with([])
    try:
        merger = Merger([a, b])
        assert merger.try_read() is None  # b may still send 0 or 1
        RingWriter(ring_b.name).write((101, 1, "v1"), origin=101)
        assert [merger.try_read()[0][1] for _ in range(2)] == [1, 2]  # type: ignore[index]
    finally:
        ring_a.close()
        ring_b.close()


def test_heartbeat_slots_record_the_call_and_clear_after() -> None:
    beats = Heartbeats.create(2)
    try:
        slot = beats.slot(1)
        slot.start(task=3, started=10.0, timeout=2.5, origins=[7, -8])
        beat = beats.read(1)
        assert (beat.busy, beat.task, beat.deadline, beat.origins) == (True, 3, 12.5, (7, -8))
        assert not beats.read(0).busy
        slot.stop()
        assert not beats.read(1).busy and beats.read(1).calls == 1
    finally:
        beats.close()
