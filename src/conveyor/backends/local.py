"""The local backend (the default): one process per planned pipeline on this machine.

The parent creates every shared object before it starts a process: one doorbell per pipeline
(and one for itself), one ring per edge between two pipelines (its consumer's doorbell to ring
on data, its producer's to ring on space), and one ring per collected task back to the parent.
Each pipeline process runs a ``PipelineLoop`` over its tasks and reports how it ended on a pipe.

The parent blocks in one call on its doorbell, every process sentinel and every report pipe
(never a sleep loop). A task that raises stops the run: the other pipelines are stopped and the
parent raises ``TaskFailed`` with the task, the item and the worker's traceback as
``__cause__``. A pipeline that dies without a report (a signal, a hard exit) raises
``PipelineCrashed`` with its exit code or signal name; restarting it is the recovery layer's job.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import dataclasses
import functools
import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

import numpy as np

from conveyor._errors import (
    ConfigurationError,
    EndOfChannel,
    PipelineCrashed,
    RemoteTraceback,
    RunStopped,
    TaskFailed,
)
from conveyor.backends.base import Monitoring, RunResult
from conveyor.graph import Graph
from conveyor.monitor.counters import Counters
from conveyor.monitor.live import Watcher
from conveyor.monitor.stats import RunStats
from conveyor.monitor.trace import TraceOutput, TraceRecorder
from conveyor.plan import Plan, detect_gpus, make_plan
from conveyor.runtime.checkpoint import new_checkpoint_prefix, remove_checkpoints
from conveyor.runtime.deadletter import DeadLetter
from conveyor.runtime.frames import create_frame_store, use_frame_store
from conveyor.runtime.heartbeat import Heartbeats
from conveyor.runtime.links import PARENT, Link, plan_links
from conveyor.runtime.loop import PipelineLoop
from conveyor.runtime.merge import Merger
from conveyor.runtime.numbering import SplitNumbers
from conveyor.runtime.progress import SourceProgress
from conveyor.transport.doorbell import Doorbell
from conveyor.transport.framestore import CameraSpec, FrameStore
from conveyor.transport.ring import Ring, RingReader, register_bell

RING_BYTES = 64 << 20  # per channel between pipelines: room for ~10 1080p frames in flight
COLLECT_BYTES = 16 << 20
MONITOR_PERIOD = 0.25  # seconds: the longest a new call's deadline can go unseen
OUTLET_TIMEOUT = 60.0  # seconds an outlet may take to send its last messages at the end
BLOCKED_WAIT = 0.005  # seconds the supervisor sleeps while an outlet is full (backpressure)


class Outlet(Protocol):
    """Where a forwarded task's outputs go as they come (``backends.bridge.Outbound``)."""

    def full(self) -> bool: ...  # leave the ring alone for now (raises if the outlet broke)
    def put(self, value: Any) -> None: ...
    def flush(self) -> None: ...  # after each drain: hand over what was put
    def finish(self) -> None: ...  # the stream has ended
    def join(self, timeout: float | None = None) -> None: ...


class CallbackOutlet:
    """An outlet that hands each output to a function in this process, as it comes (what
    ``run(..., on_output=...)`` gives: a sink in the driver, such as a database writer)."""

    def __init__(self, deliver: Callable[[Any], None]) -> None:
        self.deliver = deliver

    def full(self) -> bool:
        return False

    def put(self, value: Any) -> None:
        self.deliver(value)

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a pipeline process needs, by name (it attaches to the shared objects)."""

    index: int
    graph: Graph
    tasks: list[str]
    bell: str
    links: list[Link]  # the links that start or end in this pipeline
    frame_store: str | None = None  # the run's frame store, by name
    gpu: int | None = None  # the device of a GPU pipeline
    progress: str | None = None  # where sources resume after a restart
    heartbeats: str | None = None  # the monitor's slots, by name (one per pipeline)
    pipelines: int = 1
    checkpoints: str | None = None  # where stateful tasks save their state (a path prefix)
    stall_timeout: float | None = None  # the timeout of tasks that declare none
    quarantine: frozenset[tuple[str, int]] = frozenset()  # (task, origin) to skip
    suspects: frozenset[tuple[str, int]] = frozenset()  # (task, origin) to run alone
    split_numbers: str | None = None  # where tasks feeding replicas record their numbering
    counters: str | None = None  # the run's statistics table (monitor.counters)
    trace: str | None = None  # where this pipeline writes its trace parts (monitor.trace)
    splitters: tuple[str, ...] = ()
    parent_pid: int | None = None  # a child process: it dies with this process (the driver)


def worker_main(config: WorkerConfig, report: Connection) -> None:
    """Entry point of a pipeline process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides how a run stops
    if config.parent_pid is not None:
        die_with_parent(config.parent_pid)
    if config.gpu is not None:  # a GPU pipeline sees its own device as device 0
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
        chosen = visible[config.gpu] if len(visible) > config.gpu and visible[0] else config.gpu
        os.environ["CUDA_VISIBLE_DEVICES"] = str(chosen).strip()
    try:
        bell = Doorbell.attach(config.bell)
        register_bell(bell)
        if config.frame_store is not None:
            use_frame_store(FrameStore.attach(config.frame_store))
        progress = None
        if config.progress is not None:
            progress = SourceProgress.attach(config.progress, config.graph.sources())
        numbers = None
        if config.split_numbers is not None:
            numbers = SplitNumbers.attach(config.split_numbers, list(config.splitters))
        counters = None
        if config.counters is not None:
            counters = Counters.attach(config.counters, config.pipelines, len(config.graph.order))
        beat = None
        if config.heartbeats is not None:
            beat = Heartbeats.attach(config.heartbeats, config.pipelines).slot(config.index)
        loop = PipelineLoop(
            config.graph,
            config.tasks,
            links=config.links,
            index=config.index,
            bell=bell,
            progress=progress,
            heartbeat=beat,
            checkpoints=config.checkpoints,
            quarantine=config.quarantine,
            suspects=config.suspects,
            stall_timeout=config.stall_timeout,
            on_dead_letter=lambda letter: report.send(("dead", config.index, letter)),
            split_numbers=numbers,
            counters=counters,
            trace=TraceRecorder(config.trace, config.index) if config.trace else None,
        )
        report.send(("ready", config.index))
        loop.run()
        report.send(("done", config.index))
    except TaskFailed as exc:
        report.send(("failed", config.index, exc))
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
        text = "".join(traceback.format_exception(exc))
        report.send(("crashed", config.index, f"{type(exc).__name__}: {exc}", text))


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
    forward: Mapping[str, Outlet] | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Run on this machine. ``launcher`` starts the pipeline processes: child processes by
    default; the Ray backend passes one that starts Ray actors (``backends.ray_backend``).
    The run owns the launcher from here on and closes it at the end. ``forward``: tasks whose
    outputs go, as they come, to an outlet (a bridge to another node: ``backends.bridge``).
    ``stop``: when set (from another thread), the run stops its pipelines, cleans up and raises
    ``RunStopped`` (a node's run that the cluster's driver calls off)."""
    forward = dict(forward or {})
    monitor = monitor or Monitoring()
    launcher = launcher or ProcessLauncher()
    owned: list[Any] = [launcher]  # everything to close at the end, whatever happens
    supervisor: Supervisor | None = None
    try:
        graph.check_importable()
        workers = workers or launcher.default_workers()
        plan = plan or make_plan(graph, workers=workers, gpus=detect_gpus())
        launcher.prepare(plan)
        store = create_frame_store(cameras)
        if store is not None:
            owned.append(store)
        progress = SourceProgress.create(graph.sources())
        owned.append(progress)
        beats = Heartbeats.create(len(plan.pipelines))
        owned.append(beats)
        counters = Counters.create(len(plan.pipelines), len(graph.order)) if stats else None
        if counters is not None:
            owned.append(counters)
        names = [f"conveyor-{p.name}" for p in plan.pipelines]
        trace = None
        if monitor.trace is not None:
            trace = TraceOutput(monitor.trace, [p.name for p in plan.pipelines])
            owned.append(trace)
        checkpoints = new_checkpoint_prefix()
        owned.append(_Removal(checkpoints))
        policy = restarts or RestartPolicy()
        parent_bell = Doorbell.create()
        owned.append(parent_bell)
        register_bell(parent_bell)
        bells = [Doorbell.create() for _ in plan.pipelines]
        owned += bells
        links = []
        for link in plan_links(plan, list(dict.fromkeys([*collect, *forward]))):
            if not link.local:
                src_bell = bells[link.src].name
                dst_bell = parent_bell.name if link.dst == PARENT else bells[link.dst].name
                size = COLLECT_BYTES if link.dst == PARENT else RING_BYTES
                ring = Ring(size, consumer_bell=dst_bell, producer_bell=src_bell)
                owned.append(ring)
                link = link.with_ring(ring.name)
            links.append(link)
        splitters = tuple(sorted({k.producer for k in links if k.replicas > 1}))
        numbers = SplitNumbers.create(list(splitters))
        owned.append(numbers)
        readers: dict[str, RingReader | Merger] = {}
        for link in links:
            if link.dst != PARENT:
                continue
            reader = RingReader(link.ring_name)
            if link.merged:
                merger = readers.setdefault(link.producer, Merger([]))
                assert isinstance(merger, Merger)
                merger.add_reader(reader)
            else:
                readers[link.producer] = reader
        configs = [
            WorkerConfig(
                p.index,
                graph,
                list(p.tasks),
                bells[p.index].name,
                [k for k in links if p.index in (k.src, k.dst)],
                store.name if store is not None else None,
                p.device if p.resource == "gpu" else None,
                progress.name,
                beats.name,
                len(plan.pipelines),
                checkpoints,
                policy.stall_timeout,
                split_numbers=numbers.name,
                splitters=splitters,
                counters=counters.name if counters is not None else None,
                trace=trace.prefix if trace is not None else None,
            )
            for p in plan.pipelines
        ]
        supervisor = Supervisor(
            configs,
            names,
            readers,
            parent_bell,
            policy,
            beats,
            launcher,
            forward=forward,
            kept=set(collect),
            stopping=stop,
        )
        read = None
        if counters is not None:
            placement = [list(p.tasks) for p in plan.pipelines]
            pipelines = [p.name for p in plan.pipelines]
            read = RunStats(counters, graph.order, placement, pipelines, tuple(graph.sources()))
        with Watcher(read, monitor.watch, monitor.every) as watcher, _sigterm_interrupts():
            start = time.monotonic()
            outputs = supervisor.run()
            for outlet in forward.values():
                outlet.join(OUTLET_TIMEOUT)  # everything handed over before the run ends
            outputs = {name: outputs[name] for name in collect}
            elapsed = time.monotonic() - start
            summary = read(elapsed) if read is not None else None
            watcher.finish(summary)
        return RunResult(
            launcher.backend,
            elapsed,
            outputs,
            plan,
            list(supervisor.restarts),
            list(supervisor.dead_letters.values()),
            stats=summary,
            trace=trace.out if trace is not None else None,
        )
    finally:
        if supervisor is not None:
            supervisor.stop()
        use_frame_store(None)
        for obj in reversed(owned):
            obj.close()


@dataclass(frozen=True)
class RestartPolicy:
    """How crashed and hung pipelines are handled.

    A pipeline that dies, or whose task runs past its timeout (``@task(timeout=...)``, else
    ``stall_timeout`` seconds; None: no limit), is killed and restarted: at most ``limit``
    restarts in any ``window`` seconds (then the run fails), waiting ``backoff`` seconds,
    doubled for each restart in the window, before starting the replacement. ``limit=0`` fails
    the run at the first crash. An item whose task crashed or hung its pipeline
    ``quarantine_after`` times goes to the dead letters and the run goes on without it."""

    limit: int = 5
    window: float = 60.0
    backoff: float = 0.0
    quarantine_after: int = 3
    stall_timeout: float | None = 300.0

    def __post_init__(self) -> None:
        stall = self.stall_timeout
        if (
            self.limit < 0
            or self.window <= 0
            or self.backoff < 0
            or self.quarantine_after < 1
            or (stall is not None and stall <= 0)
        ):
            raise ConfigurationError(
                "expected limit >= 0, window > 0, backoff >= 0, quarantine_after >= 1 and "
                f"stall_timeout > 0 or None, got {self}"
            )


@dataclass
class Restart:
    """One restart of a pipeline: why, and when its replacement was ready again."""

    pipeline: str
    reason: str
    died_at: float  # monotonic seconds
    ready_at: float | None = None
    stalled: float | None = None  # a hang: how long its call had run when it was killed

    @property
    def recovery(self) -> float | None:
        """Seconds from the death being seen to the replacement running its loop."""
        return None if self.ready_at is None else self.ready_at - self.died_at


class Supervisor:
    """Starts the pipelines, collects outputs, restarts the ones that die or hang.

    It blocks on the parent's doorbell (collected outputs), every process sentinel and every
    report pipe together: never a sleep loop. The wait's timeout is the nearest deadline of a
    running task (see ``runtime.heartbeat``), bounded by ``MONITOR_PERIOD`` so that a call that
    started since is seen in time. A pipeline that dies without a report (a signal, a hard exit,
    a crash in conveyor itself) or runs a task past its deadline (killed) is restarted under the
    ``RestartPolicy``; its replacement re-reads what the dead one had not committed, restores
    checkpoints and resumes its sources, and the rings drop outputs already written (see
    ``runtime.progress``, ``runtime.checkpoint`` and the ring's ledger). The items it was
    running are suspects (run alone next time); after ``quarantine_after`` crashes or hangs an
    item becomes a dead letter. An exception in user code is the task's ``on_error`` business.
    """

    def __init__(
        self,
        configs: list[WorkerConfig],
        names: list[str],
        readers: dict[str, RingReader | Merger],
        bell: Doorbell,
        policy: RestartPolicy,
        beats: Heartbeats | None = None,
        launcher: Launcher | None = None,
        forward: Mapping[str, Outlet] | None = None,
        kept: set[str] | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.configs, self.names, self.bell, self.policy = configs, names, bell, policy
        self.beats = beats
        self.launcher = launcher or ProcessLauncher()
        self.procs: list[Any] = [None] * len(configs)
        self.reports: list[Connection] = [None] * len(configs)  # type: ignore[list-item]
        self.readers = dict(readers)
        self.outputs: dict[str, list[Any]] = {name: [] for name in readers}
        self.restarts: list[Restart] = []
        self.dead_letters: dict[tuple[str, int], DeadLetter] = {}
        self.forward = dict(forward or {})  # outputs that go to an outlet as they come
        self.kept = kept  # outputs kept in self.outputs (None: all)
        self.stopping = stopping  # set: stop the run (RunStopped)
        self.offences: dict[tuple[str, int], int] = {}  # (task, origin) -> crashes and hangs
        self._pending_ready: dict[int, Restart] = {}

    def _spawn(self, i: int) -> None:
        def register(proc: Any, report: Connection | None) -> None:
            # Known before it starts: a Ctrl-C that lands inside start() must still find it.
            self.procs[i] = proc
            if report is not None:
                self.reports[i] = report

        self.launcher.launch(self.configs[i], self.names[i], register)

    def run(self) -> dict[str, list[Any]]:
        for i in range(len(self.configs)):
            self._spawn(i)
        pending = set(range(len(self.configs)))
        open_readers = self.readers
        while pending or open_readers:
            if self.stopping is not None and self.stopping.is_set():
                raise RunStopped("the run was stopped before its sources ended")
            blocked = _drain(open_readers, self.outputs, self.forward, self.kept)
            for i in list(pending):
                if self._check(i):
                    pending.discard(i)
            if not pending and not open_readers:
                break
            wait = self._watch(pending)
            live = [self.reports[i].fileno() for i in pending]
            live += [self.procs[i].sentinel for i in pending]
            if blocked:  # an outlet is full: look again soon, the rest still wakes us
                wait = min(wait, BLOCKED_WAIT)
            watched = [r for n, r in open_readers.items() if n not in blocked]
            self.bell.wait(
                functools.partial(_any_news, watched),
                timeout=wait,
                extra_fds=live,
            )
        return self.outputs

    def _watch(self, pending: set[int]) -> float:
        """Kill and restart pipelines whose task is past its deadline; the seconds until the
        next deadline (or the monitor period) are what the supervisor may sleep."""
        if self.beats is None:
            return 1.0
        wait = MONITOR_PERIOD
        now = time.monotonic()
        for i in pending:
            beat = self.beats.read(i)
            if not beat.busy or beat.deadline == math.inf:
                continue
            if now < beat.deadline:
                wait = min(wait, beat.deadline - now)
                continue
            if self.beats.read(i).calls != beat.calls:
                continue  # that call just finished; the next one has its own deadline
            task = self.configs[i].graph.order[beat.task]
            self.procs[i].kill()
            self.procs[i].join(5)
            late = now - beat.started
            reason = f"hung in task {task!r} ({late:.1f} s, past its timeout)"
            self._restart(i, reason, None, stalled=late)
        return max(wait, 0.001)

    def _check(self, i: int) -> bool:
        """Handle what pipeline ``i`` reported or whether it died; True once it is done."""
        report = self.reports[i]
        while report.poll():
            try:
                msg = report.recv()
            except EOFError:  # it died before it could report (more)
                break
            if msg[0] == "ready":
                restart = self._pending_ready.pop(i, None)
                if restart is not None:
                    restart.ready_at = time.monotonic()
                continue
            if msg[0] == "dead":
                letter: DeadLetter = msg[2]
                self.dead_letters.setdefault((letter.task, letter.origin), letter)
                continue
            if msg[0] == "done":
                self.procs[i].join(10)
                return True
            if msg[0] == "failed":
                exc: TaskFailed = msg[2]
                raise exc from RemoteTraceback(exc.remote_traceback)
            self._restart(i, f"crashed in conveyor itself: {msg[2]}", msg[3])
            return False
        if not self.procs[i].is_alive():
            self.procs[i].join(5)
            self._restart(i, f"died {_describe_exit(self.procs[i])}", None)
        return False

    def _restart(
        self, i: int, reason: str, remote: str | None, stalled: float | None = None
    ) -> None:
        now = time.monotonic()
        proc = self.procs[i]
        proc.join(5)  # reaped: its pid is dead for the rings' takeover checks
        recent = [r for r in self.restarts if now - r.died_at < self.policy.window]
        if len(recent) >= self.policy.limit:
            exc = PipelineCrashed(
                f"pipeline process {self.names[i]} (pid {proc.pid}) {reason} after "
                f"{len(recent)} restarts in {self.policy.window:.0f} s",
                exitcode=proc.exitcode,
            )
            if remote is not None:
                raise exc from RemoteTraceback(remote)
            raise exc
        self._blame(i, reason)
        if self.policy.backoff:
            time.sleep(min(2.0, self.policy.backoff * 2 ** len(recent)))
        record = Restart(self.names[i], reason, now, stalled=stalled)
        self.restarts.append(record)
        self._pending_ready[i] = record
        self._spawn(i)

    def _blame(self, i: int, reason: str) -> None:
        """Count the crash (or hang) against the items the dead pipeline was running, and tell
        its replacement which items to run alone and which to give up on."""
        if self.beats is None:
            return
        beat = self.beats.read(i)
        self.beats.reset(i)
        config = self.configs[i]
        task = config.graph.order[beat.task] if beat.busy else None
        if task is not None and config.graph.tasks[task].kind != "source":
            for origin in beat.origins:
                key = (task, origin)
                self.offences[key] = count = self.offences.get(key, 0) + 1
                if count >= self.policy.quarantine_after:
                    self.dead_letters.setdefault(
                        key,
                        DeadLetter(
                            task=task,
                            origin=origin,
                            item=f"item {origin} (the item itself died with its pipeline)",
                            reason="hung" if reason.startswith("hung") else "crashed",
                            error=f"pipeline {self.names[i]} {reason}",
                            attempts=count,
                        ),
                    )
        mine = set(config.tasks)
        offences = {k: n for k, n in self.offences.items() if k[0] in mine}
        limit = self.policy.quarantine_after
        self.configs[i] = dataclasses.replace(
            config,
            quarantine=frozenset(k for k, n in offences.items() if n >= limit),
            suspects=frozenset(k for k, n in offences.items() if n < limit),
        )

    def stop(self) -> None:
        started = [p for p in self.procs if p is not None and p.pid is not None]
        for proc in started:
            if proc.is_alive():
                proc.kill()
        for proc in started:
            proc.join(10)


class Launcher(Protocol):
    """Starts one pipeline process running ``worker_main``. It calls ``register(proc,
    report)`` before the process can run (so that a Ctrl-C during the start still finds it;
    ``report`` may come in a second call), where ``proc`` has ``pid``, ``sentinel`` (a file
    descriptor readable once it has ended), ``is_alive()``, ``kill()``, ``join(timeout)`` and
    ``exitcode``, like ``multiprocessing.Process``."""

    backend: str

    def default_workers(self) -> int:
        """CPU pipelines to plan for when the caller names no number."""
        ...

    def prepare(self, plan: Plan) -> None:
        """Called once the plan is known, before the first ``launch``."""
        ...

    def launch(
        self, config: WorkerConfig, name: str, register: Callable[[Any, Connection | None], None]
    ) -> None: ...

    def close(self) -> None: ...


class ProcessLauncher:
    """Pipelines as child processes of this one (the spawn start method)."""

    backend = "local"

    def __init__(self) -> None:
        self.ctx = mp.get_context("spawn")

    def default_workers(self) -> int:
        return os.cpu_count() or 2

    def prepare(self, plan: Plan) -> None:
        pass

    def close(self) -> None:
        pass

    def launch(
        self, config: WorkerConfig, name: str, register: Callable[[Any, Connection | None], None]
    ) -> None:
        parent_end, child_end = self.ctx.Pipe(duplex=False)
        config = dataclasses.replace(config, parent_pid=os.getpid())
        proc = self.ctx.Process(
            target=worker_main, args=(config, child_end), name=name, daemon=True
        )
        register(proc, parent_end)
        proc.start()
        child_end.close()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (what systemd, ``docker stop`` and ``kill`` send) stops a run as Ctrl-C does:
    pipelines stopped, shared memory unlinked, ``KeyboardInterrupt`` raised. Only in the main
    thread, and only where the program has not chosen its own SIGTERM handler."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent thread dies


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies, however the parent dies
    (SIGKILL included: no clean-up of the parent's runs, so nothing else could do it). The
    parent's janitor unlinks the shared memory. Linux only; elsewhere the supervisor's
    stop is the only way out."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the call above: nobody will signal us
        os._exit(1)


class _Removal:
    """Removes a run's checkpoint files when the run's resources are closed."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def close(self) -> None:
        remove_checkpoints(self.prefix)


def _drain(
    open_readers: dict[str, RingReader | Merger],
    outputs: dict[str, list[Any]],
    forward: Mapping[str, Outlet] | None = None,
    kept: set[str] | None = None,
) -> set[str]:
    """Read what the collect rings hold; returns the names left unread (their outlet is full)."""
    forward = forward or {}
    blocked = set()
    for name, reader in list(open_readers.items()):
        outlet = forward.get(name)
        while True:
            if outlet is not None and outlet.full():
                blocked.add(name)
                break
            try:
                got = reader.try_read()
            except EndOfChannel:
                del open_readers[name]
                if outlet is not None:
                    outlet.finish()
                break
            if got is None:
                break
            # A record (origin, seq, value); from merged replicas, with its message.
            record, msg = got if isinstance(got, tuple) else (got.value, got)
            if record[2] is not None:  # None: a replica's skip marker
                value = _detach(record[2])
                if kept is None or name in kept:
                    outputs[name].append(value)
                if outlet is not None:
                    outlet.put(value)
            msg.commit()
        if outlet is not None:
            outlet.flush()
    return blocked


def _any_news(readers: list[RingReader | Merger]) -> bool:
    return any(_has_news(r) for r in readers)


def _has_news(reader: RingReader | Merger) -> bool:
    if isinstance(reader, Merger):
        return reader.has_data()
    return reader.has_data() or reader.producer_closed


def _detach(value: Any) -> Any:
    """Copy a collected value out of the ring (its arrays are views valid until commit)."""
    return copy.deepcopy(value) if _has_arrays(value) else value


def _has_arrays(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return True
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_has_arrays(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return any(_has_arrays(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_arrays(v) for v in value)
    return False


def _describe_exit(proc: Any) -> str:
    """How a pipeline's process ended: its own account if it has one (a Ray actor's), else
    its exit code or signal."""
    told = getattr(proc, "exit_reason", None)
    return told if told else _exit_reason(proc.exitcode)


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "(still running)"
    if code < 0:
        try:
            return f"from signal {signal.Signals(-code).name}"
        except ValueError:
            return f"from signal {-code}"
    return f"with exit code {code}"
