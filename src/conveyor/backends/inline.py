"""The inline backend: the whole graph in this process, serially.

For debugging (breakpoints in task code work) and as the serial baseline. It runs the same
``PipelineLoop`` as every process of the local backend, with all tasks in one pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conveyor._errors import ConfigurationError
from conveyor.backends.base import RunResult
from conveyor.backends.scaffold import Monitoring, instruments_for, observed, trace_output
from conveyor.graph import Graph
from conveyor.monitor.counters import Counters
from conveyor.runtime.context import LoopContext, LoopSettings
from conveyor.runtime.faults import Fault
from conveyor.runtime.frames import frame_store_for
from conveyor.runtime.loop import PipelineLoop
from conveyor.spec import CameraSpec

PIPELINE = "inline"  # the one pipeline's name in statistics and traces


def run_inline(
    graph: Graph,
    collect: list[str],
    cameras: Sequence[CameraSpec] = (),
    stats: bool = True,
    monitor: Monitoring | None = None,
    on_output: Mapping[str, Callable[[Any], None]] | None = None,
    faults: Sequence[Fault] = (),
) -> RunResult:
    monitor = monitor or Monitoring()
    outputs: dict[str, list[Any]] = {name: [] for name in collect}
    counters = Counters.private(1, len(graph.order)) if stats else None
    trace = trace_output(monitor, [PIPELINE])
    settings = LoopSettings(faults=tuple(faults))
    try:
        with frame_store_for(cameras):
            prefix = trace.prefix if trace is not None else None
            loop = PipelineLoop(
                LoopContext(
                    graph,
                    graph.order,
                    settings=settings,
                    collect=_delivery(outputs, on_output or {}),
                    instruments=instruments_for(graph, 0, settings, counters, prefix),
                )
            )
            with observed(graph, counters, [graph.order], [PIPELINE], monitor) as run:
                loop.run()
                run.finish()
    finally:
        if trace is not None:
            trace.close()
    return RunResult(
        "inline",
        run.elapsed,
        outputs,
        dead_letters=loop.dead_letters,
        stats=run.stats,
        trace=trace.out if trace is not None else None,
    )


def measure_costs(
    graph: Graph, items: int = 16, cameras: Sequence[CameraSpec] = ()
) -> dict[str, float]:
    """Run the graph inline on its sources' first ``items`` items; seconds per item per task.

    The first call of a task (model loading, JIT warm-up) is part of the measurement, so keep
    ``items`` large enough that it does not dominate; a task's ``cost`` hint is used when it
    processed nothing. ``cameras``: the frame store the sources write to, as for ``run``.
    """
    if items < 1:
        raise ConfigurationError(f"items must be at least 1, got {items}")
    with frame_store_for(cameras):
        loop = PipelineLoop(
            # Sources in the loop, not in threads: a task's time then holds no wait for the
            # GIL that another source's thread had (it did: 8 cameras in threads measured 7x).
            LoopContext(
                graph,
                graph.order,
                settings=LoopSettings(max_source_items=items, source_threads=False),
            )
        )
        loop.run()
        return loop.costs()


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
