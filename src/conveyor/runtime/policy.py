"""Which task a pipeline runs next: a pure function over an explicit snapshot of its state.

Rules, in order:

1. A task whose output has no room is skipped (backpressure travels upstream).
2. A batch task runs when its batch is full, when its oldest item has waited ``max_wait``, or
   when no more input can come; otherwise it waits, and the pipeline runs other tasks meanwhile
   (the returned ``wake_in`` says when the partial batch becomes due).
3. Among runnable tasks, the most congested input queue (fill fraction) goes first; ties go to
   the task furthest downstream, which finishes items and frees memory soonest.
4. Sources run when nothing else is runnable: a pipeline drains before it takes in more. But
   a source whose item is waiting, read ahead by its thread, runs before a task whose oldest
   item came later (first come, first served): in a pipeline that also takes items from other
   processes, which may never run out, its own cameras would otherwise starve (they did: 2 of
   a pipeline's 4 cameras made 3 items in 8 s while the cameras of the next one made 700).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskState:
    name: str
    order: int  # topological position: larger is further downstream
    queued: int  # items ready to run (for a join: complete sets)
    capacity: int  # input queue capacity
    batch: int = 1
    max_wait: float = 0.0
    oldest: float | None = None  # when the oldest queued item arrived (monotonic seconds)
    outputs_full: bool = False
    is_source: bool = False
    exhausted: bool = False  # a source that has finished
    waiting: bool = False  # a source whose next item has not come yet
    upstream_done: bool = False  # no more input will arrive
    turn: float = -math.inf  # a source read in the loop: when it last yielded (they take turns)


@dataclass(frozen=True)
class Decision:
    task: str | None  # what to run now, or None
    wake_in: float | None = None  # seconds until a waiting partial batch is due


def choose(tasks: Sequence[TaskState], now: float) -> Decision:
    best: TaskState | None = None
    best_key: tuple[float, int] | None = None
    source: TaskState | None = None
    wake: float | None = None
    for t in tasks:
        if t.outputs_full:
            continue
        if t.is_source:
            # The source whose item has waited longest (an item read ahead shows when it
            # came; a source read in the loop, since its last turn; one not started yet
            # counts as first in line).
            if not t.exhausted and not t.waiting and (source is None or _since(t) < _since(source)):
                source = t
            continue
        if t.queued <= 0:
            continue
        if t.batch > 1 and t.queued < t.batch and not t.upstream_done:
            due = (t.oldest if t.oldest is not None else now) + t.max_wait
            if now < due:
                wake = due - now if wake is None else min(wake, due - now)
                continue
        key = (t.queued / max(t.capacity, 1), t.order)
        if best_key is None or key > best_key:
            best, best_key = t, key
    if source is not None and (best is None or _came_first(source, best)):
        return Decision(source.name, wake)
    return Decision(best.name if best is not None else None, wake)


def _came_first(source: TaskState, task: TaskState) -> bool:
    """Whether ``source``'s item, read ahead, came before ``task``'s oldest (rule 4)."""
    return source.oldest is not None and task.oldest is not None and source.oldest < task.oldest


def _since(t: TaskState) -> float:
    return t.oldest if t.oldest is not None else t.turn
