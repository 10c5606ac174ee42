"""A named block of 64-bit words in shared memory: the run's small bookkeeping tables.

Source progress, the splits' numbering and the heartbeats are each a few int64 (or float64)
words that the parent creates before any pipeline starts and every pipeline attaches by name;
they outlive a pipeline that dies, which is what lets its replacement carry on.
"""

from __future__ import annotations

from conveyor.transport.segment import Segment, new_name


class SharedWords:
    """``count`` 64-bit words: ``ints`` (int64) and ``floats`` (float64) views of one block."""

    def __init__(self, segment: Segment, count: int) -> None:
        self.segment = segment
        self.ints = segment.buf[: 8 * count].cast("q")
        self.floats = segment.buf[: 8 * count].cast("d")

    @classmethod
    def create(cls, kind: str, count: int) -> SharedWords:
        count = max(1, count)
        return cls(Segment.create(kind, 8 * count, name=new_name(kind)), count)

    @classmethod
    def attach(cls, name: str, count: int) -> SharedWords:
        return cls(Segment.attach(name), max(1, count))

    @property
    def name(self) -> str:
        return self.segment.name

    def close(self) -> None:
        self.ints.release()
        self.floats.release()
        self.segment.close()
