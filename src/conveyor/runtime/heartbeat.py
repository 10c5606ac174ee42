"""Heartbeats: what each pipeline is running right now, in shared memory, for the task monitor.

Each pipeline owns one slot. Before it calls a task's code it writes the task, the start time,
the deadline (start + the task's timeout) and the ids (origins) of the items in the call, then
sets ``busy``; after the call it clears ``busy``. That is a handful of memory writes per call
and no system call. The supervisor reads the slots: a busy slot past its deadline is a hung
task (an endless loop, a deadlock, a stuck driver call), and when a pipeline dies the slot
says which items it was running, so repeat offenders can be quarantined as dead letters.

Times are ``time.monotonic()``, which is one system-wide clock on Linux (CLOCK_MONOTONIC).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.runtime.instrument import Instrument, TaskInfo
from conveyor.runtime.shared_words import SharedWords

MAX_ORIGINS = 64  # items of one call remembered (a bigger batch records its first 64)
_CALLS, _BUSY, _TASK, _STARTED, _DEADLINE, _COUNT, _ORIGINS = range(7)
_WORDS = _ORIGINS + MAX_ORIGINS


@dataclass(frozen=True)
class Beat:
    """One pipeline's slot as read by the supervisor."""

    calls: int  # calls started so far by the current process
    busy: bool
    task: int  # index of the task in the graph's order
    started: float
    deadline: float  # math.inf: no timeout
    origins: tuple[int, ...]


class Heartbeats:
    """One slot per pipeline (the parent creates it; each pipeline writes its own slot)."""

    def __init__(self, words: SharedWords, pipelines: int) -> None:
        self.words = words
        self.pipelines = pipelines
        self._ints, self._floats = words.ints, words.floats

    @classmethod
    def create(cls, pipelines: int) -> Heartbeats:
        return cls(SharedWords.create("beat", _WORDS * pipelines), pipelines)

    @classmethod
    def attach(cls, name: str, pipelines: int) -> Heartbeats:
        return cls(SharedWords.attach(name, _WORDS * pipelines), pipelines)

    @property
    def name(self) -> str:
        return self.words.name

    def slot(self, pipeline: int) -> HeartbeatSlot:
        return HeartbeatSlot(self, pipeline * _WORDS)

    def read(self, pipeline: int) -> Beat:
        base = pipeline * _WORDS
        ints, floats = self._ints, self._floats
        count = min(int(ints[base + _COUNT]), MAX_ORIGINS)
        start = base + _ORIGINS
        return Beat(
            calls=int(ints[base + _CALLS]),
            busy=bool(ints[base + _BUSY]),
            task=int(ints[base + _TASK]),
            started=float(floats[base + _STARTED]),
            deadline=float(floats[base + _DEADLINE]),
            origins=tuple(ints[start : start + count]),
        )

    def reset(self, pipeline: int) -> None:
        """Clear a dead pipeline's slot before its replacement starts."""
        base = pipeline * _WORDS
        self._ints[base + _BUSY] = 0
        self._ints[base + _CALLS] = 0
        self._ints[base + _COUNT] = 0

    def close(self) -> None:
        self.words.close()


class HeartbeatSlot:
    """The writer's side: one pipeline's slot."""

    __slots__ = ("_ints", "_floats", "_base")

    def __init__(self, beats: Heartbeats, base: int) -> None:
        self._ints, self._floats, self._base = beats._ints, beats._floats, base

    def start(
        self, task: int, started: float, timeout: float | None, origins: Sequence[int]
    ) -> None:
        ints, base = self._ints, self._base
        at = base + _ORIGINS
        for origin in origins[:MAX_ORIGINS]:
            ints[at] = origin
            at += 1
        ints[base + _COUNT] = at - base - _ORIGINS
        ints[base + _TASK] = task
        self._floats[base + _STARTED] = started
        self._floats[base + _DEADLINE] = math.inf if timeout is None else started + timeout
        ints[base + _CALLS] += 1
        ints[base + _BUSY] = 1  # last: the slot is complete when the monitor sees it busy

    def stop(self) -> None:
        self._ints[self._base + _BUSY] = 0


class HeartbeatHook(Instrument):
    """Tells the supervisor's monitor which call runs, since when and on which items."""

    def __init__(self, slot: HeartbeatSlot) -> None:
        self.slot = slot

    def call_started(self, task: TaskInfo, call: int, origins: Sequence[int]) -> None:
        self.slot.start(task.order, time.monotonic(), task.timeout, origins)

    def call_ended(
        self, task: TaskInfo, started: float, spent: float, items: int, first: int | None
    ) -> None:
        self.slot.stop()
