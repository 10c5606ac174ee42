"""Everything one pipeline's loop is given, in one object: which tasks it runs, its channels,
the shared objects it works with (attached by the backend) and the run's settings. A run's
settings travel here, to each worker, never through the environment or module globals."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.graph import Graph
from conveyor.runtime.faults import Fault
from conveyor.runtime.inputs import DEFAULT_QUEUE
from conveyor.runtime.instrument import Instrument
from conveyor.runtime.links import Link
from conveyor.runtime.numbering import SplitNumbers
from conveyor.runtime.progress import SourceProgress
from conveyor.spec import DeadLetter
from conveyor.transport.doorbell import Doorbell

Origins = frozenset[tuple[str, int]]  # (task, origin) pairs


@dataclass(frozen=True)
class LoopSettings:
    """A run's settings for each of its pipelines (plain values: they cross processes)."""

    queue_size: int = DEFAULT_QUEUE  # items per in-process input queue
    max_source_items: int | None = None  # stop sources early (a warm-up run)
    stall_timeout: float | None = None  # the timeout of tasks that declare none
    quarantine: Origins = frozenset()  # crashed or hung too often: skipped
    suspects: Origins = frozenset()  # crashed or hung before: run alone
    faults: tuple[Fault, ...] = ()  # injected for tests (conveyor.testing)
    # Several sources of a pipeline each read in a thread of their own (``source_run``);
    # False: in the loop, one after the other (measuring costs: no thread waits for the GIL).
    source_threads: bool = True
    # Changes made while the run goes on (``runtime.control``), kept for a replacement:
    ended: frozenset[str] = frozenset()  # sources removed from the run: they yield nothing
    streams: tuple[tuple[str, int], ...] = ()  # (gathering task, streams it waits for)


@dataclass
class LoopContext:
    """One pipeline's loop: its tasks, channels, shared objects and settings."""

    graph: Graph
    tasks: Sequence[str]  # the tasks placed in this pipeline
    index: int = 0
    links: list[Link] | None = None  # None: every task of the graph here (inline)
    settings: LoopSettings = field(default_factory=LoopSettings)
    bell: Doorbell | None = None  # rung when input or room arrives (None: nobody rings)
    progress: SourceProgress | None = None  # where sources resume (a run that restarts)
    checkpoints: str | None = None  # where stateful tasks save their state (a path prefix)
    split_numbers: SplitNumbers | None = None  # numbering of splits that survives restarts
    instruments: Sequence[Instrument] = ()  # statistics, trace, heartbeats, faults
    collect: Mapping[str, Callable[[Any], None]] = field(default_factory=dict)
    on_dead_letter: Callable[[DeadLetter], None] | None = None
    control: str | None = None  # the driver's ring of changes into this pipeline
    # A source was attached after the task taking its items had ended (the run was ending):
    # the driver is told, by the source's name, and ends it.
    on_late_source: Callable[[str], None] | None = None

    @property
    def supervised(self) -> bool:
        """A run that restarts crashed pipelines (a writer then waits for a dead consumer's
        replacement instead of failing)."""
        return self.progress is not None
