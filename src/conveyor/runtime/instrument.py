"""The one hook through which a pipeline's loop is watched: statistics, the timeline trace,
the hung-task monitor's heartbeats and injected faults all subclass ``Instrument``; the loop
calls ``Instruments`` at each event and knows none of them.

Each method is a no-op unless a subclass overrides it, and ``Instruments`` calls only the
overrides: a run without statistics or faults pays for nothing it does not use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskInfo:
    """What an instrument knows of a task: its name, its place in the graph's order (the row
    of the statistics table) and how long one call may run (None: no limit)."""

    name: str
    order: int
    timeout: float | None


class Instrument:
    """Base of every hook into the loop (see the module docstring)."""

    def loop_started(self, tasks: Sequence[TaskInfo]) -> None:
        """The pipeline starts, before it runs anything."""

    def loop_ended(self) -> None:
        """The pipeline has finished (or failed)."""

    def tick(self, now: float) -> None:
        """Once per turn of the loop (``now``: monotonic seconds)."""

    def sleeping(self) -> None:
        """The loop is about to wait for input."""

    def woke(self, slept: float) -> None:
        """The loop waited ``slept`` seconds."""

    def queued(self, task: TaskInfo, depth: int, capacity: int) -> None:
        """Before a call: the task's input queues hold ``depth`` items of ``capacity``."""

    def call_started(self, task: TaskInfo, call: int, origins: Sequence[int]) -> None:
        """A call of ``task`` (its ``call``-th in this process) on items ``origins`` starts."""

    def call_ended(
        self, task: TaskInfo, started: float, spent: float, items: int, first: int | None
    ) -> None:
        """The call that started at ``started`` (perf_counter) took ``spent`` seconds and
        processed ``items`` items, the first one ``first``."""

    def emitted(self, task: TaskInfo, items: int) -> None:
        """``task`` passed ``items`` outputs on."""

    def dead(self, task: TaskInfo) -> None:
        """``task`` gave an item up (a dead letter)."""

    def dropped(self, task: TaskInfo, items: int) -> None:
        """Source ``task`` let ``items`` more go unsent (a live camera behind real time)."""


_EVENTS = (
    "loop_started",
    "loop_ended",
    "tick",
    "sleeping",
    "woke",
    "queued",
    "call_started",
    "call_ended",
    "emitted",
    "dead",
    "dropped",
)


class Instruments(Instrument):
    """Several instruments as one: each event goes to the ones that override it."""

    def __init__(self, hooks: Sequence[Instrument] = ()) -> None:
        self.hooks = list(hooks)
        for event in _EVENTS:
            base = getattr(Instrument, event)
            mine = [getattr(h, event) for h in hooks if getattr(type(h), event) is not base]
            if not mine:
                continue  # the no-op of the base class stays
            if len(mine) == 1:
                setattr(self, event, mine[0])
            else:
                setattr(self, event, _fan_out(mine))


def _fan_out(methods: list[object]) -> object:
    def call_all(*args: object) -> None:
        for method in methods:
            method(*args)  # type: ignore[operator]

    return call_all
