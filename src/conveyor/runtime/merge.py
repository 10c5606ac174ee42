"""Merging a replicated task's outputs back into the order of its inputs.

The producer upstream of the replicas numbered its outputs 0, 1, 2, ... (``seq``); each replica
sends exactly one record per input it took, ``(origin, seq, value)``, with ``value`` None when
it produced nothing (a skip marker), in the order it took them. So each inlet is sorted by seq and
the next message in order is always at the head of one inlet: the merge holds at most one
message per ring and never reorders more than that.

After a crash the merge may start (a replacement merger at 0) or go on (an inlet replayed from
its committed position) below numbers it will never see again: a number that was delivered and
committed before the crash is not in any inlet any more. Since each inlet is in order, a number
below every inlet's head can no longer come, so when every open inlet shows a head the merge
moves on to the smallest head. Without a crash the smallest head is always the next number and
this rule never fires.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from conveyor._errors import ConveyorError, EndOfChannel
from conveyor.runtime.lease import Lease
from conveyor.transport.ring import Message, RingReader


class Merger:
    """Inlets: rings from replicas in other processes, plus local pushes from a replica here.

    ``try_read()`` returns ``(record, token)`` for the next record in seq order, or None if it
    has not arrived yet; a record is ``(origin, seq, value)``, ``value`` None for a skip marker.
    ``token`` is a ``Lease`` (dropping it commits the ring message) or what was pushed with a
    local one. Raises ``EndOfChannel`` when every inlet has ended and everything was delivered.
    """

    def __init__(self, readers: list[RingReader], local_inlets: int = 0) -> None:
        self.readers = list(readers)
        self._heads: list[Message | None] = [None] * len(self.readers)
        self._open = [True] * len(self.readers)
        self._local: deque[tuple[tuple[int, int, Any], Lease | None]] = deque()
        self._local_open = local_inlets
        self.next = 0

    def add_reader(self, reader: RingReader) -> None:
        self.readers.append(reader)
        self._heads.append(None)
        self._open.append(True)

    def add_local(self) -> None:
        self._local_open += 1

    def push(self, record: tuple[int, int, Any], token: Lease | None) -> None:
        """A record from a replica in this process (its seqs arrive in increasing order)."""
        self._local.append((record, token))

    @property
    def local_backlog(self) -> int:
        return len(self._local)

    def close_local(self) -> None:
        self._local_open -= 1

    def has_data(self) -> bool:
        """Something new to look at: the next local message, or a ring whose head is unread."""
        if self._local and self._local[0][0][1] == self.next:
            return True
        return any(
            h is None and o and (r.has_data() or r.producer_closed)
            for r, h, o in zip(self.readers, self._heads, self._open, strict=True)
        )

    def _caught_up(self) -> bool:
        """Move ``next`` up to the smallest head when every open inlet shows one above it."""
        if self._local_open and not self._local:
            return False  # a local replica may still send something lower
        heads = [h.value[1] for h in self._heads if h is not None]
        if any(o and h is None for h, o in zip(self._heads, self._open, strict=True)):
            return False
        if self._local:
            heads.append(self._local[0][0][1])
        if not heads or min(heads) <= self.next:
            return False
        self.next = min(heads)
        return True

    def try_read(self) -> tuple[tuple[int, int, Any], Lease | None] | None:
        if self._local and self._local[0][0][1] == self.next:
            self.next += 1
            return self._local.popleft()
        for i, reader in enumerate(self.readers):
            head = self._heads[i]
            if head is None and self._open[i]:
                try:
                    head = self._heads[i] = reader.try_read()
                except EndOfChannel:
                    self._open[i] = False
            if head is not None and head.value[1] == self.next:
                self._heads[i] = None
                self.next += 1
                return head.value, Lease([head.commit])
        if self._caught_up():
            return self.try_read()
        if self._local_open or any(self._open):
            return None
        if self._local or any(h is not None for h in self._heads):
            waiting = sorted(
                [r[1] for r, _ in self._local] + [h.value[1] for h in self._heads if h is not None]
            )
            raise ConveyorError(
                f"merge of replicated outputs lost message {self.next}: every replica has "
                f"ended and {waiting[:5]} are still waiting (a bug in conveyor: please report)"
            )
        raise EndOfChannel("every replica has ended")
