"""One task as a pipeline runs it: its spec, its inputs and outlets, and what it has done."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conveyor.runtime.checkpoint import CheckpointFile, Saver
from conveyor.runtime.inputs import Inputs
from conveyor.runtime.instrument import TaskInfo
from conveyor.runtime.outputs import Outlet
from conveyor.runtime.policy import TaskState
from conveyor.task import TaskSpec
from conveyor.transport.ring import RingWriter


@dataclass(eq=False)
class TaskRun:
    spec: TaskSpec
    info: TaskInfo  # what instruments see: name, order, timeout
    inputs: Inputs
    outlets: list[Outlet] = field(default_factory=list)  # in the order outputs go out
    done: bool = False
    calls: int = 0
    items: int = 0
    busy: float = 0.0  # seconds spent in the task's own code
    instances: dict[Any, Any] = field(default_factory=dict)  # a stateful task's, by key
    saver: Saver | None = None  # checkpoints, in a run that can restart this pipeline
    tid: int = field(init=False)  # a stable number for the name (origins derive from it)
    # A function task's callable, its bound arguments applied once in this process.
    function: Callable[..., Any] = field(init=False)

    def __post_init__(self) -> None:
        self.tid = zlib.crc32(self.spec.name.encode())
        self.function = self.spec.target if self.spec.constructed else self.spec.function()

    @property
    def name(self) -> str:
        return self.spec.name

    def state(
        self,
        now: float,
        blocked: set[RingWriter],
        waiting: bool = False,
        since: float | None = None,
        turn: float = -math.inf,
    ) -> TaskState:
        """What the scheduling policy needs to know of this task now (a source: whether its
        next item has come, and when)."""
        full = any([o.full(blocked) for o in self.outlets])
        if self.spec.kind == "source":
            return TaskState(
                self.name,
                self.info.order,
                0,
                1,
                oldest=since,
                outputs_full=full,
                is_source=True,
                exhausted=self.done,
                waiting=waiting,
                turn=turn,
            )
        ready = self.inputs.ready(now)
        return TaskState(
            name=self.name,
            order=self.info.order,
            queued=ready.queued,
            capacity=ready.capacity,
            batch=ready.batch,
            max_wait=ready.max_wait,
            oldest=ready.oldest,
            outputs_full=full,
            upstream_done=self.inputs.upstream_done,
        )

    def restore(self, prefix: str, pipeline: int) -> None:
        """A stateful task with checkpoints: its saver, and the last checkpoint's instances."""
        every = self.spec.checkpoint
        if self.spec.stateful and every is not None:
            self.saver = Saver(CheckpointFile(prefix, self.name, pipeline), every)
            self.instances = self.saver.restore(self.spec.target, self.spec.construct)

    def save(self) -> None:
        """Save a checkpoint now if inputs are held for one (their frames go free)."""
        if self.saver is not None and self.saver.held:
            self.saver.save(self.instances)
