"""Lease accounting: what keeps a ring message alive while work derived from it remains.

A ring message's arrays are views into shared memory that stay valid until it is committed,
and a task may pass such a view on to a task in the same pipeline. So every in-process item
(an ``Entry`` in an input queue) carries a *lease* on the ring messages, frames and source
items it came from, and a message is committed only when all the in-process work derived from
it is done: each queue an output is put into takes a reference, each finished call drops one.

Origins: every item has a deterministic id derived from its inputs' ids and the task
(``derive``), the same in every process and after a restart; rings drop repeats by it, and
checkpoints and dead letters name items by it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class Lease:
    """Keeps ring messages (or other resources) alive while in-process work derived from them
    remains. Released (its callbacks run) when its count drops to zero."""

    __slots__ = ("refs", "on_release")

    def __init__(self, on_release: list[Callable[[], None]]) -> None:
        self.refs = 1
        self.on_release = on_release

    def add(self, n: int) -> None:
        self.refs += n

    def drop(self) -> None:
        self.refs -= 1
        if self.refs == 0:
            for callback in self.on_release:
                callback()


class _Dropped:
    """The result of an item given up on (a dead letter): nothing goes on from it."""

    def __reduce__(self) -> str:  # one object, also after a checkpoint's pickle round trip
        return "DROPPED"


DROPPED = _Dropped()


@dataclass(slots=True)
class Entry:
    """One item waiting in a task's input queue."""

    value: Any
    lease: Lease | None
    arrived: float  # monotonic seconds
    seq: int | None = None  # set on the input of a replica: its place in the split stream
    origin: int = 0  # deterministic id of what this item derives from (replays dedupe by it)


@dataclass(slots=True)
class Unit:
    """One output of a call: from one entry (in a batch) or from all of them."""

    entries: list[Entry]
    lease: Lease | None
    origin: int
    seq: int | None
    result: Any = None


def holding(entries: list[Entry]) -> Lease | None:
    """A lease for an output made from several inputs: it holds every input's lease."""
    leases = [e.lease for e in entries if e.lease is not None]
    if len(leases) <= 1:
        return leases[0] if leases else None
    return Lease([x.drop for x in leases])


def derive(parent: int | tuple[int, ...], tid: int) -> int:
    """The origin of an output: a deterministic function of its inputs' origins and the task
    (ints and tuples of ints hash the same in every process, unlike str)."""
    return hash((parent, tid)) or 1
