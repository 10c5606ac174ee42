"""A task's input queues, and how it takes a call's items from them: one class per kind of
task behind one interface (``Inputs``), so that the loop never asks which kind it runs.

- ``ZipInputs``: one item from each input, the n-th of each (a task of one input is this too);
- ``BatchInputs``: up to ``batch`` items of its one input, run as a list;
- ``JoinInputs``: with ``join_on=("camera", "index")``, the oldest set whose fields are equal;
- ``GatherInputs``: a group of items of one input (every camera's for one instant, see
  ``runtime.gather``).

Each says how many calls are ready (``ready``: what the policy needs), takes them (``take``),
cuts a call's entries into output units (``units``) and says why it can never run again when
its inputs ended with items left (``stuck``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from conveyor._errors import TaskFailed
from conveyor.runtime.gather import Pending, oldest_group
from conveyor.runtime.lease import Entry, Unit, derive, holding
from conveyor.spec import Gather

DEFAULT_QUEUE = 64  # items per in-process input queue
GATHER_ROOM = 4  # a gathering task's queue holds this many times more


class Ready(NamedTuple):
    """What the policy sees of a task's inputs (``runtime.policy.TaskState``)."""

    queued: int  # items (or complete sets) ready to run
    capacity: int
    batch: int = 1
    max_wait: float = 0.0
    oldest: float | None = None


@dataclass(eq=False)
class Inputs:
    """The queues of one task, one per parameter, and how many producers of each are open."""

    name: str
    params: list[str]
    capacity: int = DEFAULT_QUEUE
    queues: dict[str, deque[Entry]] = field(init=False)
    open: dict[str, int] = field(init=False)  # param -> producers not done

    def __post_init__(self) -> None:
        self.queues = {p: deque() for p in self.params}
        self.open = dict.fromkeys(self.params, 0)

    @property
    def upstream_done(self) -> bool:
        return not any(self.open.values())

    @property
    def depth(self) -> int:
        return sum(len(q) for q in self.queues.values())

    @property
    def waiting(self) -> bool:
        return any(self.queues.values())

    def is_full(self, param: str) -> bool:
        return len(self.queues[param]) >= self.capacity

    def args(self, values: list[Any]) -> tuple[Any, ...]:
        """The call's arguments: one per parameter."""
        return tuple(values)

    def ready(self, now: float) -> Ready:
        queued = min((len(q) for q in self.queues.values()), default=0)
        return Ready(queued, self.capacity, oldest=self._oldest() if queued else None)

    def take(self, now: float) -> list[Entry]:
        """The entries of the next call (the policy chose this task, so they are there)."""
        return [self.queues[p].popleft() for p in self.params]

    def units(self, entries: list[Entry], tid: int) -> list[Unit]:
        """What the call produces: here one output from all its entries."""
        parent = entries[0].origin if len(entries) == 1 else tuple(e.origin for e in entries)
        return [Unit(entries, holding(entries), derive(parent, tid), entries[0].seq)]

    def stuck(self) -> str:
        """Why this task can never run again, when its inputs ended with items left."""
        left = {p: len(q) for p, q in self.queues.items()}
        return (
            f"join task {self.name!r}: its inputs ended with unmatched messages {left}; a join "
            f"needs one message from every input, matched {self._matched_how()}"
        )

    def _matched_how(self) -> str:
        return "in order (zip)"

    def _oldest(self) -> float:
        return min(q[0].arrived for q in self.queues.values())


class ZipInputs(Inputs):
    """The n-th item of every input together (the base class's behaviour)."""


@dataclass(eq=False)
class BatchInputs(Inputs):
    """Up to ``batch`` items of one input per call; an item suspected of crashing its
    pipeline runs alone, so that a crash points at it and not at a whole batch."""

    batch: int = 1
    max_wait: float = 0.0
    suspect: Callable[[Entry], bool] = lambda _entry: False

    def args(self, values: list[Any]) -> tuple[Any, ...]:
        return (values,)

    def ready(self, now: float) -> Ready:
        (queue,) = self.queues.values()
        oldest = queue[0].arrived if queue else None
        return Ready(len(queue), self.capacity, self.batch, self.max_wait, oldest)

    def take(self, now: float) -> list[Entry]:
        (queue,) = self.queues.values()
        entries = [queue.popleft()]
        if not self.suspect(entries[0]):
            while queue and len(entries) < self.batch and not self.suspect(queue[0]):
                entries.append(queue.popleft())
        return entries

    def units(self, entries: list[Entry], tid: int) -> list[Unit]:
        return [Unit([e], e.lease, derive(e.origin, tid), e.seq) for e in entries]


@dataclass(eq=False)
class JoinInputs(Inputs):
    """One item of each input whose ``fields`` are equal, the oldest such set first."""

    fields: tuple[str, ...] = ()

    def ready(self, now: float) -> Ready:
        if self._match() is None:
            return Ready(0, self.capacity)
        queued = len(next(iter(self.queues.values())))
        return Ready(queued, self.capacity, oldest=self._oldest())

    def take(self, now: float) -> list[Entry]:
        positions = self._match()
        assert positions is not None  # the policy chose it, so a complete set exists
        entries = []
        for param, pos in zip(self.params, positions, strict=True):
            queue = self.queues[param]
            entries.append(queue[pos])
            del queue[pos]
        return entries

    def _matched_how(self) -> str:
        return f"on {self.fields}"

    def _key(self, entry: Entry) -> tuple[Any, ...]:
        return tuple(getattr(entry.value, f) for f in self.fields)

    def _match(self) -> list[int] | None:
        """Positions of the oldest complete set (one entry per input)."""
        queues = list(self.queues.values())
        for i, entry in enumerate(queues[0]):
            key = self._key(entry)
            found = [i]
            for other in queues[1:]:
                pos = next((j for j, e in enumerate(other) if self._key(e) == key), None)
                if pos is None:
                    break
                found.append(pos)
            else:
                return found
        full = [p for p, q in self.queues.items() if len(q) >= self.capacity]
        if full:
            raise TaskFailed(
                f"join task {self.name!r}: input(s) {full} hold {self.capacity} messages and "
                f"none matches the other inputs on {self.fields}; check the join fields",
                task=self.name,
            )
        return None


@dataclass(eq=False)
class GatherInputs(Inputs):
    """Groups of items of one input (``runtime.gather``): one call per complete group."""

    gather: Gather | None = None
    max_wait: float = 0.0
    latest: dict[Any, Any] = field(default_factory=dict)  # member -> newest group key
    heard: dict[Any, float] = field(default_factory=dict)  # member -> its newest arrival
    expected: int = 0  # members to see before the population is trusted (streams above)

    def args(self, values: list[Any]) -> tuple[Any, ...]:
        return (values,)

    def ready(self, now: float) -> Ready:
        positions, due_in = self._group(now)
        (queue,) = self.queues.values()
        # A group that is not complete yet is shown to the policy as a partial batch due in
        # ``due_in``: the policy then runs other tasks and wakes the loop when it is due.
        return Ready(
            queued=len(queue) if positions or due_in is not None else 0,
            capacity=self.capacity,
            batch=1 if positions else len(queue) + 1,
            max_wait=due_in or 0.0,
            oldest=min(queue[i].arrived for i in positions) if positions else now,
        )

    def take(self, now: float) -> list[Entry]:
        positions, _ = self._group(now)
        assert positions  # the policy chose it, so a group is ready
        (queue,) = self.queues.values()
        entries = [queue[i] for i in positions]
        for i in reversed(positions):
            del queue[i]
        return entries

    def units(self, entries: list[Entry], tid: int) -> list[Unit]:
        origin = derive(tuple(sorted(e.origin for e in entries)), tid)
        return [Unit(entries, holding(entries), origin, None)]

    def _group(self, now: float) -> tuple[list[int] | None, float | None]:
        gather = self.gather
        assert gather is not None
        (queue,) = self.queues.values()
        pending = [
            Pending(gather.key_of(e.value), gather.member_of(e.value), e.arrived) for e in queue
        ]
        return oldest_group(
            pending, self.latest, now, self.max_wait, self.upstream_done, self.expected, self.heard
        )
