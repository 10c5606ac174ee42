"""What every backend returns, and the one entry point that picks a backend."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor._errors import ConfigurationError
from conveyor.graph import Graph
from conveyor.monitor.stats import Stats
from conveyor.plan import Plan
from conveyor.runtime.deadletter import DeadLetter
from conveyor.transport.framestore import CameraSpec


@dataclass
class RunResult:
    """The outcome of a finished run."""

    backend: str
    elapsed: float
    outputs: dict[str, list[Any]] = field(default_factory=dict)  # for tasks named in collect
    plan: Plan | None = None
    restarts: list[Any] = field(default_factory=list)  # local backend: pipelines restarted
    dead_letters: list[DeadLetter] = field(default_factory=list)  # items given up on
    stats: Stats | None = None  # what each task and pipeline did (monitor.stats)


def run(
    graph: Graph,
    backend: str = "local",
    plan: Plan | None = None,
    workers: int | None = None,
    collect: Iterable[str] = (),
    cameras: Sequence[CameraSpec] = (),
    restarts: Any = None,
    stats: bool = True,
) -> RunResult:
    """Run ``graph`` to completion (its sources end) and return what it produced.

    ``collect`` names tasks whose outputs come back to this process in ``RunResult.outputs``
    (in production, sinks write results themselves; collecting is for tests and notebooks).
    ``cameras`` creates the run's frame store (``conveyor.frame_store()``, ``conveyor.Frame``);
    its frames live as long as the run, so collected ``Frame`` messages cannot be read after.
    ``restarts``: a ``RestartPolicy`` for crashed pipelines (local backend; default: up to 5
    restarts a minute, each resuming without loss or duplicates).
    """
    names = list(collect)
    missing = [n for n in names if n not in graph.tasks]
    if missing:
        raise ConfigurationError(f"collect names tasks not in the graph: {missing}")
    sinks = [n for n in names if graph.tasks[n].output is None]
    if sinks:
        raise ConfigurationError(f"collect names sinks, which produce nothing: {sinks}")
    if backend == "inline":
        from conveyor.backends.inline import run_inline

        return run_inline(graph, names, cameras, stats=stats)
    if backend == "local":
        from conveyor.backends.local import run_local

        return run_local(
            graph,
            names,
            plan=plan,
            workers=workers,
            cameras=cameras,
            restarts=restarts,
            stats=stats,
        )
    raise ConfigurationError(f"backend must be 'inline' or 'local', got {backend!r}")
