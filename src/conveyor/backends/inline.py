"""The inline backend: the whole graph in this process, serially.

For debugging (breakpoints in task code work) and as the serial baseline. It runs the same
``PipelineLoop`` as every process of the local backend, with all tasks in one pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from conveyor.backends.base import RunResult
from conveyor.graph import Graph
from conveyor.monitor.counters import Counters
from conveyor.monitor.stats import snapshot
from conveyor.runtime.frames import frame_store_for
from conveyor.runtime.loop import PipelineLoop
from conveyor.transport.framestore import CameraSpec


def run_inline(
    graph: Graph, collect: list[str], cameras: Sequence[CameraSpec] = (), stats: bool = True
) -> RunResult:
    outputs: dict[str, list] = {name: [] for name in collect}
    counters = Counters.private(1, len(graph.order)) if stats else None
    with frame_store_for(cameras):
        loop = PipelineLoop(
            graph,
            graph.order,
            collect={name: outputs[name].append for name in collect},
            counters=counters,
        )
        start = time.monotonic()
        loop.run()
        elapsed = time.monotonic() - start
        summary = None
        if counters is not None:
            summary = snapshot(counters, graph.order, [list(graph.order)], elapsed)
        return RunResult("inline", elapsed, outputs, dead_letters=loop.dead_letters, stats=summary)
