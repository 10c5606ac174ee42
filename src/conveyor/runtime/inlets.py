"""Where a pipeline's items come in from other processes: a ring from one producer, or the
merge of a replicated producer's rings (``runtime.merge``). Both give ``Entry`` records that
hold a lease on their ring message (dropping it commits the message), so the loop and the
driver read them alike.
"""

from __future__ import annotations

import time
from typing import Protocol

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
