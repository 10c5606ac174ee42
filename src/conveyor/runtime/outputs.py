"""Where a task's outputs go: one class per kind of destination behind one interface
(``Outlet``), so that emitting is one loop over a task's outlets.

- ``RingOutlet``: a ring to a task in another pipeline (the value is copied into shared
  memory: it needs no lease);
- ``QueueOutlet``: the input queue of a task in this pipeline (the value passes as a Python
  object and takes a reference on the lease of the input it came from);
- ``MergerOutlet``: a merge in this pipeline of a replicated producer's outputs;
- ``ReplicaRouter``: a replicated consumer: each item goes to one replica's outlet, by key or
  round-robin, numbered so that the merge after the replicas restores the order;
- ``CallbackOutlet``: a function in this process (``collect``, ``on_output``).

An outlet that carries the item's place in a split stream (``seq``) writes it; one of a
replica also passes a skip marker on for an input its task produced nothing for, since the
merge downstream waits for every number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from conveyor.runtime.inputs import Inputs
from conveyor.runtime.lease import Entry, Lease
from conveyor.runtime.links import route
from conveyor.runtime.merge import Merger
from conveyor.runtime.numbering import Numbering
from conveyor.transport.ring import RingWriter

ROOM = 1 << 16  # bytes a ring must have free to take the next output


class Outlet(Protocol):
    def put(
        self, value: Any, origin: int, seq: int | None, lease: Lease | None, now: float
    ) -> None:
        """Pass ``value`` on (``now``: monotonic seconds, when it was produced)."""
        ...

    def skip(self, origin: int, seq: int) -> None:
        """The task produced nothing for input ``seq`` of a split stream."""
        ...

    def full(self, blocked: set[RingWriter]) -> bool:
        """No room for another output now; a full ring adds itself to ``blocked`` (the loop
        wakes when one of them has room)."""
        ...

    def close(self) -> None:
        """The task has finished: nothing more will come."""
        ...


class RingOutlet:
    def __init__(self, writer: RingWriter, carries_seq: bool = False) -> None:
        self.writer, self.carries_seq = writer, carries_seq

    def put(
        self, value: Any, origin: int, seq: int | None, lease: Lease | None, now: float
    ) -> None:
        # a replayed origin is dropped by the ring (its ledger)
        self.writer.write((origin, seq if self.carries_seq else None, value), origin=origin)

    def skip(self, origin: int, seq: int) -> None:
        if self.carries_seq:
            self.writer.write((origin, seq, None), origin=origin)

    def full(self, blocked: set[RingWriter]) -> bool:
        if self.writer.has_space(ROOM):
            return False
        blocked.add(self.writer)
        return True

    def close(self) -> None:
        self.writer.close()


class QueueOutlet:
    def __init__(self, consumer: Inputs, param: str, carries_seq: bool = False) -> None:
        self.consumer, self.param, self.carries_seq = consumer, param, carries_seq

    def put(
        self, value: Any, origin: int, seq: int | None, lease: Lease | None, now: float
    ) -> None:
        if lease is not None:
            lease.add(1)
        entry = Entry(value, lease, now, seq if self.carries_seq else None, origin)
        self.consumer.queues[self.param].append(entry)

    def skip(self, origin: int, seq: int) -> None:
        pass

    def full(self, blocked: set[RingWriter]) -> bool:
        return self.consumer.is_full(self.param)

    def close(self) -> None:
        self.consumer.open[self.param] -= 1


class MergerOutlet:
    def __init__(self, merger: Merger, room: int) -> None:
        self.merger, self.room = merger, room

    def put(
        self, value: Any, origin: int, seq: int | None, lease: Lease | None, now: float
    ) -> None:
        assert seq is not None  # a replica's input always has its place in the split stream
        if lease is not None:
            lease.add(1)
        self.merger.push((origin, seq, value), lease)

    def skip(self, origin: int, seq: int) -> None:
        self.merger.push((origin, seq, None), None)

    def full(self, blocked: set[RingWriter]) -> bool:
        return self.merger.local_backlog >= self.room

    def close(self) -> None:
        self.merger.close_local()


class SplitCounter:
    """Numbers a task's outputs 0, 1, 2, ... for the merges after its replicated consumers:
    once per output, however many replicated consumers it has (their routers share this)."""

    def __init__(self, journal: Numbering | None) -> None:
        self.journal = journal  # survives a restart of this pipeline, when there is one
        self.next = 0
        self.last: tuple[int, int] | None = None  # (origin, number) of the latest output

    def number(self, origin: int) -> int:
        if self.last is not None and self.last[0] == origin:
            return self.last[1]
        if self.journal is not None:
            number = self.journal.number(origin)
        else:
            number, self.next = self.next, self.next + 1
        self.last = (origin, number)
        return number


class ReplicaRouter:
    """An edge into a replicated task: numbers each item and sends it to one replica."""

    def __init__(self, key: str | None, replicas: int, counter: SplitCounter) -> None:
        self.key = key
        self.replicas: list[Outlet | None] = [None] * replicas
        self.counter = counter

    def put(
        self, value: Any, origin: int, seq: int | None, lease: Lease | None, now: float
    ) -> None:
        number = self.counter.number(origin)
        target = self.replicas[route(value, number, self.key, len(self.replicas))]
        assert target is not None  # wired: every replica has its outlet
        target.put(value, origin, number, lease, now)

    def skip(self, origin: int, seq: int) -> None:
        pass

    def full(self, blocked: set[RingWriter]) -> bool:
        return any([o.full(blocked) for o in self.replicas if o is not None])

    def close(self) -> None:
        for outlet in self.replicas:
            if outlet is not None:
                outlet.close()


class CallbackOutlet:
    def __init__(self, deliver: Callable[[Any], None]) -> None:
        self.deliver = deliver

    def put(
        self, value: Any, origin: int, seq: int | None, lease: Lease | None, now: float
    ) -> None:
        self.deliver(value)

    def skip(self, origin: int, seq: int) -> None:
        pass

    def full(self, blocked: set[RingWriter]) -> bool:
        return False

    def close(self) -> None:
        pass
