"""The Ray backend: every planned pipeline is a Ray actor; the same tasks, the same transport.

``cv.run(graph, backend="ray")`` connects to Ray (``ray.init``: a running cluster when
``ray_init={"address": ...}`` or ``RAY_ADDRESS`` says so, else a local one started without its
dashboard) and runs the local backend's machinery with one difference: the supervisor starts
each pipeline as a Ray actor instead of a child process (``RayLauncher``). Inside the actor the
pipeline runs ``worker_main`` exactly as a child process would, so within a node everything
crosses between pipelines through conveyor's shared memory (rings, frame store, counters,
doorbells, all attached by name): frames and arrays never go through Ray's sockets or its
object store, and small messages pay no Ray call each (each actor runs one long loop).

Supervision is conveyor's, not Ray's: actors are made with ``max_restarts=0`` and a dead one is
replaced by a new actor under the run's ``RestartPolicy``. That replacement replays what was
not committed, restores checkpoints and resumes sources, as on the local backend. Ray's own
restart would re-run the constructor but not the long ``run`` call, so it would add nothing.
The supervisor sees an actor die through a pidfd on its process (readable once it exits),
in the same single wait as everything else; each actor reports on a Unix socket.

On one node the actors of a run are pinned to the driver's node (node affinity), where the
shared memory lives. A cluster of several nodes runs one such run per node, joined by bridges:
``backends.ray_cluster``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import secrets
import select
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from conveyor._errors import ConfigurationError, PipelineCrashed
from conveyor.backends.local import WorkerConfig, worker_main
from conveyor.plan import Plan
from conveyor.transport.procs import pid_alive

START_TIMEOUT = 120.0  # seconds for an actor to start and report in (Ray may start a worker)
# Environment variables not handed to actors: Ray's own and per-process ones.
_PRIVATE_ENV = ("RAY_", "CUDA_VISIBLE_DEVICES", "PYTEST_", "_")


def ray_module() -> Any:
    """``ray``, or a clear error saying how to get it."""
    try:
        import ray
    except ImportError:
        raise ConfigurationError(
            "backend='ray' needs Ray: pip install 'conveyor[ray]' (or pip install ray==2.60.0)"
        ) from None
    return ray


def ensure_ray(init: Mapping[str, Any] | None = None) -> Any:
    """Connect to Ray once per process. Started here, Ray runs without its dashboard (it costs
    memory and start-up time); ``init`` is passed to ``ray.init`` and wins."""
    ray = ray_module()
    if not ray.is_initialized():
        args: dict[str, Any] = {
            "include_dashboard": False,
            "configure_logging": False,
            "log_to_driver": True,
        }
        args.update(init or {})
        if not args.get("address") and not os.environ.get("RAY_ADDRESS"):
            # Ray starts its workers at niceness 15 by default, as background work; here they
            # are the pipelines, so they run at the driver's priority, as child processes do.
            os.environ.setdefault("RAY_worker_niceness", "0")  # noqa: SIM112 - Ray's spelling
        ray.init(**args)
    elif init:
        raise ConfigurationError(
            "Ray is already initialized in this process: ray_init arguments cannot apply; "
            "call ray.shutdown() first or leave ray_init out"
        )
    return ray


def node_resources(ray: Any, node_id: str) -> dict[str, float]:
    """What one node of the cluster has (its totals, as Ray counts them)."""
    for node in ray.nodes():
        if node["NodeID"] == node_id:
            return dict(node.get("Resources", {}))
    raise PipelineCrashed(f"Ray node {node_id} is not in the cluster (any more)")


REPORTS_PREFIX = "conveyor-ray-"  # then the owning process's pid, a dash, random letters


def reports_folder(base: str | None = None) -> str:
    """A new private folder (mode 0700) for this process's report socket, named by its pid.
    An actor that is killed (its node lost, or the driver gone) never removes its own, so each
    new one first removes those whose process has ended; a folder of a live process is kept."""
    base = base or tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for name in os.listdir(base):
            pid = name.removeprefix(REPORTS_PREFIX).split("-", 1)[0]
            if name.startswith(REPORTS_PREFIX) and pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{REPORTS_PREFIX}{os.getpid()}-", dir=base)


class RayLauncher:
    """Starts pipelines as Ray actors on this node; they report on a Unix socket."""

    backend = "ray"

    def __init__(self, ray: Any) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.ray = ray
        node_id = ray.get_runtime_context().get_node_id()
        self.node = NodeAffinitySchedulingStrategy(node_id, False)
        have = node_resources(ray, node_id)
        self.cpus = float(have.get("CPU", 1.0))
        self.gpus = float(have.get("GPU", 0.0))
        self.folder = reports_folder()
        self.address = os.path.join(self.folder, "reports")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.address)
        self.server.listen(64)
        self.server.settimeout(START_TIMEOUT)
        self.actor_class = ray.remote(max_restarts=0, max_concurrency=1)(PipelineActor)
        self.env = driver_context()[0]
        self.serial = itertools.count()
        self.run_id = secrets.token_hex(3)
        self.ready: list[tuple[Any, int]] = []  # started CPU actors and their pids

    def _options(self, name: str, pipelines: int, gpu: bool) -> dict[str, Any]:
        return {
            # The plan has already balanced the load: each actor asks for its share of the
            # CPUs, so that a run never waits for resources the node does not have.
            "num_cpus": min(1.0, self.cpus / max(1, pipelines)),
            "num_gpus": 1 if gpu else 0,
            "scheduling_strategy": self.node,
            # unique in the cluster, also while a killed actor of an earlier run keeps its name
            "name": f"{name}-{os.getpid()}-{self.run_id}-{next(self.serial)}",
        }

    def default_workers(self) -> int:
        return max(1, int(self.cpus))

    def prepare(self, plan: Plan) -> None:
        # Start every CPU pipeline's actor at once: one after the other, the first pipelines
        # would run (and fill their rings) while the last ones are still starting.
        self.prestart(sum(p.resource == "cpu" for p in plan.pipelines), len(plan.pipelines))

    def prestart(self, count: int, pipelines: int) -> None:
        """Start ``count`` CPU pipeline actors together (``launch`` takes them in turn)."""
        actors = [
            self.actor_class.options(**self._options("conveyor-cpu", pipelines, False)).remote()
            for _ in range(count)
        ]
        try:
            pids = self.ray.get([a.pid.remote() for a in actors], timeout=START_TIMEOUT)
        except Exception as exc:
            for a in actors:
                self.ray.kill(a)
            raise PipelineCrashed(f"Ray actors for the pipelines did not start: {exc}") from exc
        self.ready = list(zip(actors, pids, strict=True))

    def launch(
        self, config: WorkerConfig, name: str, register: Callable[[Any, Connection | None], None]
    ) -> None:
        gpu = config.gpu is not None and self.gpus >= 1
        if self.ready and not gpu:
            actor, pid = self.ready.pop(0)
        else:
            options = self._options(name, config.pipelines, gpu)
            actor = self.actor_class.options(**options).remote()
            try:
                pid = self.ray.get(actor.pid.remote(), timeout=START_TIMEOUT)
            except Exception as exc:
                self.ray.kill(actor)
                raise PipelineCrashed(
                    f"Ray actor for pipeline {name} did not start: {exc}"
                ) from exc
        proc = ActorProcess(self.ray, actor, pid)
        register(proc, None)
        # Ray sets CUDA_VISIBLE_DEVICES of a GPU actor to its own device: no remapping.
        payload = pickle.dumps(replace(config, gpu=None))
        proc.ref = actor.run.remote(payload, _main_path(), list(sys.path), self.env, self.address)
        try:
            sock, _ = self.server.accept()
        except TimeoutError:
            proc.kill()
            raise PipelineCrashed(
                f"Ray actor for pipeline {name} (pid {pid}) did not report within "
                f"{START_TIMEOUT:.0f} s"
            ) from None
        sock.settimeout(None)
        register(proc, Connection(sock.detach(), writable=False))

    def close(self) -> None:
        for actor, _ in self.ready:  # started but not needed (the run failed early)
            self.ray.kill(actor)
        self.ready = []
        self.server.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class PipelineActor:
    """The body of every pipeline actor (made a Ray actor class by ``RayLauncher``)."""

    def pid(self) -> int:
        return os.getpid()

    def run(
        self,
        payload: bytes,
        main_path: str | None,
        path: list[str],
        env: dict[str, str],
        address: str,
    ) -> None:
        adopt_driver(env, path, main_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address)
        report = Connection(sock.detach(), readable=False)
        config: WorkerConfig = pickle.loads(payload)
        worker_main(config, report)
        report.close()
        import ray

        ray.actor.exit_actor()  # type: ignore[no-untyped-call]  # the pipeline is done: its process ends, as a child's would


def adopt_driver(env: dict[str, str], path: list[str], main_path: str | None) -> None:
    """In an actor: take the driver's environment and imports before the graph's modules load,
    as a child process would inherit them. (Not a runtime_env: that would start a fresh worker
    process per run instead of taking one of Ray's ready ones.)"""
    os.environ.update(env)
    for entry in reversed(path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    if main_path is not None:  # tasks of the driver's script: import it as spawn does
        import multiprocessing.spawn

        if getattr(sys.modules.get("__mp_main__"), "__file__", None) != main_path:
            multiprocessing.spawn.import_main_path(main_path)


def driver_context() -> tuple[dict[str, str], list[str], str | None]:
    """What ``adopt_driver`` needs, read in the driver."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV)}
    return env, list(sys.path), _main_path()


def _main_path() -> str | None:
    """The driver's script, when it is a file (its tasks pickle as ``__main__.name``)."""
    path = getattr(sys.modules["__main__"], "__file__", None)
    return os.path.abspath(path) if path and path.endswith(".py") else None


class ActorProcess:
    """A pipeline actor seen like a ``multiprocessing.Process`` by the supervisor."""

    def __init__(self, ray: Any, actor: Any, pid: int) -> None:
        self.ray, self.actor, self.pid = ray, actor, pid
        self.sentinel = os.pidfd_open(pid)  # readable once the process has ended
        self.ref: Any = None
        self.killed = False

    def is_alive(self) -> bool:
        return not select.select([self.sentinel], [], [], 0)[0]

    def join(self, timeout: float | None = None) -> None:
        select.select([self.sentinel], [], [], timeout)

    def kill(self) -> None:
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.ray.kill(self.actor, no_restart=True)

    @property
    def exitcode(self) -> int | None:
        if self.is_alive():
            return None
        return -signal.SIGKILL if self.killed else 1

    @property
    def exit_reason(self) -> str | None:
        """What Ray says of the actor's end (a non-child's exit status cannot be read)."""
        if self.killed or self.ref is None or self.is_alive():
            return None
        try:
            self.ray.get(self.ref, timeout=1.0)
        except Exception as exc:  # noqa: BLE001 - whatever Ray says is the account
            first = str(exc).strip().splitlines()
            return f"(Ray actor ended: {first[0] if first else type(exc).__name__})"
        return "(Ray actor ended)"

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.sentinel)
