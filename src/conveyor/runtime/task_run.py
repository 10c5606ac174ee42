"""One task as a pipeline runs it: its spec, its inputs and outlets, and what it has done."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conveyor.runtime.checkpoint import Saver
from conveyor.runtime.inputs import Inputs
from conveyor.runtime.instrument import TaskInfo
from conveyor.runtime.outputs import Outlet
from conveyor.task import TaskSpec


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
        stateless = not self.spec.stateful and self.spec.kind != "source"
        self.function = self.spec.function() if stateless else self.spec.target

    @property
    def name(self) -> str:
        return self.spec.name
