"""Where a pipeline's items come in from other processes: a ring from one producer, the
merge of a replicated producer's rings (``runtime.merge``), or the rings of a task partitioned
by stream, in arrival order (``FanInInlet``: each ring keeps its streams' order). All give
``Entry`` records that hold a lease on their ring message (dropping it commits the message), so
the loop and the driver read them alike.
"""

from __future__ import annotations

import time
from typing import Protocol

from conveyor._errors import EndOfChannel
from conveyor.runtime.lease import Entry, Lease
from conveyor.runtime.merge import Merger
from conveyor.transport.ring import RingReader


class Inlet(Protocol):
    def read(self) -> Entry | None:
        """The next item, or None if none has arrived; raises ``EndOfChannel`` at the end."""
        ...

    def news(self) -> bool:
        """Worth waking for: an item arrived, or the channel ended."""
        ...


class RingInlet:
    """One ring; its messages are records ``(origin, seq, value)``."""

    def __init__(self, reader: RingReader) -> None:
        self.reader = reader

    def read(self) -> Entry | None:
        got = self.reader.try_read()
        if got is None:
            return None
        origin, seq, value = got.value
        return Entry(value, Lease([got.commit]), time.monotonic(), seq, origin)

    def news(self) -> bool:
        return self.reader.has_data() or self.reader.producer_closed


class MergeInlet:
    """A replicated producer's outputs, back in the order of their inputs. A replica's skip
    marker (its task returned nothing for an input) is passed over here."""

    def __init__(self, merger: Merger) -> None:
        self.merger = merger

    def read(self) -> Entry | None:
        while True:
            got = self.merger.try_read()
            if got is None:
                return None
            (origin, _seq, value), lease = got
            if value is not None:
                return Entry(value, lease, time.monotonic(), None, origin)
            if lease is not None:
                lease.drop()

    def news(self) -> bool:
        return self.merger.has_data()


class FanInInlet:
    """Several rings read in turn, in arrival order: the replicas of a task partitioned by
    stream (each ring holds whole streams, in order). Ends when every ring has ended."""

    def __init__(self, inlets: list[RingInlet]) -> None:
        self.inlets = list(inlets)
        self.turn = 0

    def read(self) -> Entry | None:
        for _ in range(len(self.inlets)):
            if not self.inlets:
                break
            self.turn %= len(self.inlets)
            inlet = self.inlets[self.turn]
            try:
                entry = inlet.read()
            except EndOfChannel:
                self.inlets.pop(self.turn)
                continue
            self.turn += 1
            if entry is not None:
                return entry
        if not self.inlets:
            raise EndOfChannel("every ring of the fan-in has ended")
        return None

    def news(self) -> bool:
        return not self.inlets or any(inlet.news() for inlet in self.inlets)
