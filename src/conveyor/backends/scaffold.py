"""What the inline and local backends share: the instruments each pipeline's loop gets, and
the frame of a run (statistics table, trace, observers, timing) around the pipelines."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.graph import Graph
from conveyor.monitor.counters import CounterHook, Counters
from conveyor.monitor.live import Observer, Watcher
from conveyor.monitor.stats import RunStats, Stats
from conveyor.monitor.trace import TraceOutput, TraceRecorder
from conveyor.runtime.context import LoopSettings
from conveyor.runtime.faults import FaultInjector
from conveyor.runtime.heartbeat import HeartbeatHook, HeartbeatSlot
from conveyor.runtime.instrument import Instrument


@dataclass(frozen=True)
class Monitoring:
    """What a run is asked to show while it goes on (see ``conveyor.run``)."""

    watch: list[Observer] = field(default_factory=list)
    every: float = 1.0
    trace: Path | None = None


def instruments_for(
    graph: Graph,
    index: int,
    settings: LoopSettings,
    counters: Counters | None,
    trace_prefix: str | None,
    beat: HeartbeatSlot | None = None,
) -> list[Instrument]:
    """Pipeline ``index``'s instruments. The heartbeat comes before the faults: a call that an
    injected fault hangs must be seen running by the supervisor's monitor."""
    hooks: list[Instrument] = []
    if beat is not None:
        hooks.append(HeartbeatHook(beat))
    if settings.faults:
        hooks.append(FaultInjector(settings.faults))
    if counters is not None:
        hooks.append(CounterHook(counters, index, len(graph.order)))
    if trace_prefix is not None:
        hooks.append(TraceRecorder(trace_prefix, index))
    return hooks


@dataclass
class Observed:
    """A run being watched: its elapsed time and final statistics once ``finish`` is called."""

    read: RunStats | None
    watcher: Watcher
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0
    stats: Stats | None = None

    def finish(self) -> None:
        self.elapsed = time.monotonic() - self.started
        self.stats = self.read(self.elapsed) if self.read is not None else None
        self.watcher.finish(self.stats)


@contextlib.contextmanager
def observed(
    graph: Graph,
    counters: Counters | None,
    placement: Sequence[Sequence[str]],
    pipelines: Sequence[str],
    monitor: Monitoring,
) -> Iterator[Observed]:
    """Watch a run: its observers get snapshots while it goes on; ``finish()`` at its end."""
    read = None
    if counters is not None:
        read = RunStats(
            counters,
            graph.order,
            [list(p) for p in placement],
            list(pipelines),
            tuple(graph.sources()),
        )
    with Watcher(read, monitor.watch, monitor.every) as watcher:
        yield Observed(read, watcher)


def trace_output(monitor: Monitoring, pipelines: list[str]) -> TraceOutput | None:
    return TraceOutput(monitor.trace, pipelines) if monitor.trace is not None else None
