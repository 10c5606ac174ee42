"""The inline backend: the whole graph in this process, serially.

For debugging (breakpoints in task code work) and as the serial baseline. It runs the same
``PipelineLoop`` as every process of the local backend, with all tasks in one pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conveyor.backends.base import Monitoring, RunResult
from conveyor.graph import Graph
from conveyor.monitor.counters import Counters
from conveyor.monitor.live import Watcher
from conveyor.monitor.stats import RunStats
from conveyor.monitor.trace import TraceOutput, TraceRecorder
from conveyor.runtime.frames import frame_store_for
from conveyor.runtime.loop import PipelineLoop
from conveyor.transport.framestore import CameraSpec

PIPELINE = "inline"  # the one pipeline's name in statistics and traces


def run_inline(
    graph: Graph,
    collect: list[str],
    cameras: Sequence[CameraSpec] = (),
    stats: bool = True,
    monitor: Monitoring | None = None,
    on_output: Mapping[str, Callable[[Any], None]] | None = None,
) -> RunResult:
    monitor = monitor or Monitoring()
    outputs: dict[str, list] = {name: [] for name in collect}
    delivered = _delivery(outputs, on_output or {})
    counters = Counters.private(1, len(graph.order)) if stats else None
    trace = TraceOutput(monitor.trace, [PIPELINE]) if monitor.trace is not None else None
    try:
        with frame_store_for(cameras):
            loop = PipelineLoop(
                graph,
                graph.order,
                collect=delivered,
                counters=counters,
                trace=TraceRecorder(trace.prefix, 0) if trace is not None else None,
            )
            read = None
            if counters is not None:
                order = graph.order
                read = RunStats(counters, order, [order], [PIPELINE], tuple(graph.sources()))
            with Watcher(read, monitor.watch, monitor.every) as watcher:
                start = time.monotonic()
                loop.run()
                elapsed = time.monotonic() - start
                summary = read(elapsed) if read is not None else None
                watcher.finish(summary)
    finally:
        if trace is not None:
            trace.close()
    return RunResult(
        "inline",
        elapsed,
        outputs,
        dead_letters=loop.dead_letters,
        stats=summary,
        trace=trace.out if trace is not None else None,
    )


def _delivery(
    outputs: dict[str, list[Any]], on_output: Mapping[str, Callable[[Any], None]]
) -> dict[str, Callable[[Any], None]]:
    """Per task: where each output goes (collected, handed to ``on_output``, or both)."""

    def both(keep: Callable[[Any], None], give: Callable[[Any], None]) -> Callable[[Any], None]:
        def deliver(value: Any) -> None:
            keep(value)
            give(value)

        return deliver

    out: dict[str, Callable[[Any], None]] = {n: kept.append for n, kept in outputs.items()}
    for name, give in on_output.items():
        out[name] = both(out[name], give) if name in out else give
    return out
