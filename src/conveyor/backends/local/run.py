"""Running a plan on this machine: the shared objects, the supervisor, the observers."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence

from conveyor.backends.base import RunResult
from conveyor.backends.local.changes import RunChanges
from conveyor.backends.local.launcher import Launcher, ProcessLauncher
from conveyor.backends.local.resources import create_resources
from conveyor.backends.local.sinks import Sink
from conveyor.backends.local.supervisor import Supervisor, sigterm_interrupts
from conveyor.backends.scaffold import Monitoring, observed
from conveyor.graph import Graph
from conveyor.plan import Plan, detect_gpus, make_plan
from conveyor.runtime.context import LoopSettings
from conveyor.runtime.faults import Fault
from conveyor.spec import CameraSpec, RestartPolicy

OUTLET_TIMEOUT = 60.0  # seconds a sink may take to send its last messages at the end


def run_local(
    graph: Graph,
    collect: list[str],
    plan: Plan | None = None,
    workers: int | None = None,
    cameras: Sequence[CameraSpec] = (),
    restarts: RestartPolicy | None = None,
    stats: bool = True,
    monitor: Monitoring | None = None,
    launcher: Launcher | None = None,
    forward: Mapping[str, Sink] | None = None,
    stop: threading.Event | None = None,
    faults: Sequence[Fault] = (),
    on_start: Callable[[Supervisor], None] | None = None,
) -> RunResult:
    """Run on this machine. ``launcher`` starts the pipeline processes: child processes by
    default; the Ray backend passes one that starts Ray actors (``backends.ray_backend``).
    The run owns the launcher from here on and closes it at the end. ``forward``: tasks whose
    outputs go, as they come, to a sink (a bridge to another node: ``backends.bridge``).
    ``stop``: when set (from another thread), the run stops its pipelines, cleans up and raises
    ``RunStopped`` (a node's run that the cluster's driver calls off). ``on_start`` is given
    the supervisor once the pipelines are being started: it takes changes while the run goes
    on (``Supervisor.ask``: a ``RunHandle``'s cameras added and removed)."""
    forward = dict(forward or {})
    monitor = monitor or Monitoring()
    launcher = launcher or ProcessLauncher()
    policy = restarts or RestartPolicy()
    with contextlib.ExitStack() as stack:
        stack.callback(launcher.close)
        graph.check_importable()
        workers = workers or launcher.default_workers()
        plan = plan or make_plan(graph, workers=workers, gpus=detect_gpus())
        launcher.prepare(plan)
        settings = LoopSettings(stall_timeout=policy.stall_timeout, faults=tuple(faults))
        back = list(dict.fromkeys([*collect, *forward]))
        shared = create_resources(stack, graph, plan, back, cameras, settings, stats, monitor)
        supervisor = Supervisor(
            shared.configs,
            [f"conveyor-{p.name}" for p in plan.pipelines],
            shared.readers,
            shared.bell,
            policy,
            shared.heartbeats,
            launcher,
            forward=forward,
            kept=set(collect),
            stopping=stop,
        )
        stack.callback(supervisor.stop)
        changes = RunChanges(stack, plan, shared, supervisor.configs, supervisor.add_pipeline)
        stack.callback(changes.close)  # before its rings go (callbacks run last first)
        supervisor.changes = changes
        stack.callback(supervisor.refuse_requests)
        if on_start is not None:
            on_start(supervisor)
        placement = [p.tasks for p in plan.pipelines]
        names = [p.name for p in plan.pipelines]
        with (
            observed(graph, shared.counters, placement, names, monitor) as run,
            sigterm_interrupts(),
        ):
            outputs = supervisor.run()
            for sink in forward.values():
                sink.join(OUTLET_TIMEOUT)  # everything handed over before the run ends
            run.finish()
        return RunResult(
            launcher.backend,
            run.elapsed,
            {name: outputs[name] for name in collect},
            plan,
            list(supervisor.restarts),
            list(supervisor.dead_letters.values()),
            stats=run.stats,
            trace=shared.trace.out if shared.trace is not None else None,
        )
