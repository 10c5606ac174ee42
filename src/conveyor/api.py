"""The entry points that run a graph: ``run`` (to the end) and ``start`` (a handle on a run that
goes on: cameras added and removed). They check the options, then hand the run to the backend
asked for (inline, local, or Ray on one node or several)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from conveyor._errors import ConfigurationError
from conveyor.backends.base import RunResult
from conveyor.backends.inline import run_inline
from conveyor.backends.local import CallbackSink, Launcher, ProcessLauncher, run_local
from conveyor.backends.local.handle import RunHandle
from conveyor.backends.local.supervisor import Supervisor
from conveyor.backends.ray_backend import RayLauncher, ensure_ray
from conveyor.backends.ray_cluster import check_cluster_options, run_cluster, spread
from conveyor.backends.scaffold import Monitoring
from conveyor.cluster_plan import ClusterPlan
from conveyor.graph import Graph
from conveyor.monitor.live import Observer
from conveyor.plan import Plan
from conveyor.runtime.faults import armed
from conveyor.spec import CameraSpec, RestartPolicy

Backend = Literal["inline", "local", "ray"]
BACKENDS: tuple[str, ...] = ("inline", "local", "ray")


def run(
    graph: Graph,
    backend: Backend = "local",
    plan: Plan | ClusterPlan | None = None,
    workers: int | None = None,
    collect: Iterable[str] = (),
    cameras: Sequence[CameraSpec] = (),
    restarts: RestartPolicy | None = None,
    stats: bool = True,
    watch: Sequence[Observer] = (),
    watch_every: float = 1.0,
    trace: str | os.PathLike[str] | None = None,
    ray_init: Mapping[str, Any] | None = None,
    on_output: Mapping[str, Callable[[Any], None]] | None = None,
) -> RunResult:
    """Run ``graph`` to completion (its sources end) and return what it produced.

    ``collect`` names tasks whose outputs come back to this process in ``RunResult.outputs``
    (in production, sinks write results themselves; collecting is for tests and notebooks).
    ``cameras`` creates the run's frame store (``conveyor.frame_store()``, ``conveyor.Frame``);
    its frames live as long as the run, so collected ``Frame`` messages cannot be read after.
    ``restarts``: a ``RestartPolicy`` for crashed pipelines (local backend; default: up to 5
    restarts a minute, each resuming without loss or duplicates).
    ``stats``: count what every task and pipeline does (``RunResult.stats``; costs < 1%).
    ``watch``: callables given a ``Stats`` snapshot every ``watch_every`` seconds while the run
    goes on and the final one at its end (``Dashboard``, ``MetricsServer``, your own).
    ``trace``: write a Chrome/Perfetto timeline of every task call to this JSON file
    (``conveyor report`` draws it).
    ``on_output``: per task name, a function called here with each of its outputs, in order,
    as they come while the run goes on (a sink in this process: a database writer). It runs
    on the thread that supervises the run: hand slow work to a thread of your own.
    ``backend``: ``"local"`` (processes on this machine), ``"inline"`` (serially, in this
    process: for debugging) or ``"ray"`` (pipelines as Ray actors; ``ray_init`` goes to
    ``ray.init``, e.g. ``{"address": "auto"}``; on a cluster of several nodes the graph is
    spread over them: ``plan`` may then be a ``ClusterPlan``, see ``backends.ray_cluster``).
    """
    names = _collected(graph, collect)
    if ray_init is not None and backend != "ray":
        raise ConfigurationError(f"ray_init is for backend='ray', not {backend!r}")
    on_output = _callbacks(graph, on_output)
    monitor = _monitoring(stats, watch, watch_every, trace)
    faults = armed()  # set around this call by conveyor.testing.inject
    if backend == "inline":
        return run_inline(
            graph, names, cameras, stats=stats, monitor=monitor, on_output=on_output, faults=faults
        )
    if backend not in BACKENDS:
        raise ConfigurationError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(plan, ClusterPlan) and backend != "ray":
        raise ConfigurationError("a ClusterPlan runs on backend='ray'")
    # Ray runs the local backend's machinery too: only what starts a pipeline differs.
    launcher: Launcher
    if backend == "ray":
        ray = ensure_ray(ray_init)
        cluster = spread(ray, graph, plan, workers)
        if cluster is not None:
            check_cluster_options(watch, trace)
            if on_output:
                raise ConfigurationError("on_output is not supported over several Ray nodes yet")
            return run_cluster(ray, graph, names, cluster, cameras, restarts, stats, faults)
        launcher = RayLauncher(ray)
    else:
        launcher = ProcessLauncher()
    if isinstance(plan, ClusterPlan):  # every task on the driver's node: a plan of its own
        plan = plan.node_plan(plan.used[0].id, graph)
    return run_local(
        graph,
        names,
        plan=plan,
        workers=workers,
        cameras=cameras,
        restarts=restarts,
        stats=stats,
        monitor=monitor,
        launcher=launcher,
        forward={name: CallbackSink(give) for name, give in on_output.items()},
        faults=faults,
    )


def start(
    graph: Graph,
    plan: Plan | None = None,
    workers: int | None = None,
    collect: Iterable[str] = (),
    cameras: Sequence[CameraSpec] = (),
    restarts: RestartPolicy | None = None,
    stats: bool = True,
    watch: Sequence[Observer] = (),
    watch_every: float = 1.0,
    trace: str | os.PathLike[str] | None = None,
    on_output: Mapping[str, Callable[[Any], None]] | None = None,
) -> RunHandle:
    """Start ``graph`` on this machine's processes and return at once with a ``RunHandle``:
    the run goes on (its supervisor in a thread of this process) while the caller adds and
    removes sources (``add_source``, ``remove_source``: cameras that come and go), then
    ``stop()``s it or ``wait()``s for its sources to end. The options are ``run``'s;
    ``on_output`` functions are called on the run's thread.

        run = cv.start(graph, cameras=specs)
        run.add_source(cv.bind(Camera, url).named("camera[door]"), cameras=[door_spec])
        run.remove_source("camera[aisle-3]")
        result = run.stop()
    """
    names = _collected(graph, collect)
    callbacks = _callbacks(graph, on_output)
    monitor = _monitoring(stats, watch, watch_every, trace)
    if isinstance(plan, ClusterPlan):
        raise ConfigurationError("start runs on this machine: give it a Plan, not a ClusterPlan")

    faults = armed()  # set around this call by conveyor.testing.inject
    forward = {name: CallbackSink(give) for name, give in callbacks.items()}

    def begin(cancel: threading.Event, started: Callable[[Supervisor], None]) -> RunResult:
        return run_local(
            graph,
            names,
            plan=plan,
            workers=workers,
            cameras=cameras,
            restarts=restarts,
            stats=stats,
            monitor=monitor,
            forward=forward,
            stop=cancel,
            faults=faults,
            on_start=started,
        )

    return RunHandle(begin)


def _collected(graph: Graph, collect: Iterable[str]) -> list[str]:
    names = list(collect)
    missing = [n for n in names if n not in graph.tasks]
    if missing:
        raise ConfigurationError(f"collect names tasks not in the graph: {missing}")
    sinks = [n for n in names if graph.tasks[n].output is None]
    if sinks:
        raise ConfigurationError(f"collect names sinks, which produce nothing: {sinks}")
    return names


def _callbacks(
    graph: Graph, on_output: Mapping[str, Callable[[Any], None]] | None
) -> dict[str, Callable[[Any], None]]:
    callbacks = dict(on_output or {})
    unknown = [n for n in callbacks if n not in graph.tasks or graph.tasks[n].output is None]
    if unknown:
        raise ConfigurationError(
            f"on_output names tasks that are not in the graph or produce nothing: {unknown}"
        )
    return callbacks


def _monitoring(
    stats: bool, watch: Sequence[Observer], every: float, trace: str | os.PathLike[str] | None
) -> Monitoring:
    if watch and not stats:
        raise ConfigurationError("watch needs statistics: leave stats=True")
    return Monitoring(list(watch), every, Path(trace) if trace is not None else None)
