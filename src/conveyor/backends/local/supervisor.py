"""The driver's side of a local run: it starts the pipelines, collects outputs, and restarts
the ones that die or hang (see ``Supervisor``)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from multiprocessing import connection
from multiprocessing.connection import Connection
from typing import Any

from conveyor._errors import PipelineCrashed, RemoteTraceback, RunStopped, TaskFailed
from conveyor.backends.local.changes import RunChanges
from conveyor.backends.local.launcher import Launcher, ProcessLauncher
from conveyor.backends.local.sinks import Sink, drain
from conveyor.backends.local.worker import WorkerConfig
from conveyor.runtime.heartbeat import Heartbeats
from conveyor.runtime.inlets import Inlet
from conveyor.spec import DeadLetter, Restart, RestartPolicy
from conveyor.transport.doorbell import Doorbell

log = logging.getLogger("conveyor")

MONITOR_PERIOD = 0.25  # seconds: the longest a new call's deadline can go unseen
BLOCKED_WAIT = 0.005  # seconds the supervisor sleeps while an outlet is full (backpressure)
COLLECT_LINGER = 0.01  # seconds outputs may wait in their rings after others came (batching)


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
        readers: dict[str, Inlet],
        bell: Doorbell,
        policy: RestartPolicy,
        beats: Heartbeats | None = None,
        launcher: Launcher | None = None,
        forward: Mapping[str, Sink] | None = None,
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
        self.pending: set[int] = set()  # pipelines not done yet
        # Changes asked for by another thread (a ``RunHandle``), made here between two waits.
        self.changes: RunChanges | None = None
        self.requests: queue.SimpleQueue[tuple[Callable[[RunChanges], Any], Future[Any]]] = (
            queue.SimpleQueue()
        )

    def ask(self, change: Callable[[RunChanges], Any]) -> Future[Any]:
        """Have ``change`` made on the supervisor's thread (thread-safe): its result, or what
        it raised, comes in the future."""
        done: Future[Any] = Future()
        self.requests.put((change, done))
        self.bell.ring()
        return done

    def refuse_requests(self) -> None:
        """The run is over: changes asked for from now on, and those not made yet, fail."""
        self.changes = None
        self._take_requests()

    def _take_requests(self) -> None:
        while not self.requests.empty():
            change, done = self.requests.get()
            try:
                if self.changes is None:
                    raise RunStopped("the run has ended: it takes no more changes")
                done.set_result(change(self.changes))
            except BaseException as exc:  # noqa: BLE001 - the asker gets it
                done.set_exception(exc)

    def add_pipeline(self, config: WorkerConfig) -> None:
        """Start one more pipeline while the run goes on (an added source's)."""
        i = len(self.configs)
        self.configs.append(config)
        self.names.append(f"conveyor-p{i}-{config.tasks[0]}")
        self.procs.append(None)
        self.reports.append(None)  # type: ignore[arg-type]
        self.pending.add(i)
        self._spawn(i)

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
        self.pending = pending = set(range(len(self.configs)))
        open_readers = self.readers
        while pending or open_readers:
            if self.stopping is not None and self.stopping.is_set():
                raise RunStopped("the run was stopped before its sources ended")
            self._take_requests()
            blocked = drain(open_readers, self.outputs, self.forward, self.kept)
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
            news = self.bell.wait(
                functools.partial(_any_news, watched, self.requests),
                timeout=wait,
                extra_fds=live,
            )
            if news and watched and not blocked:
                # Outputs came: let more gather before the next wake-up (each is a context
                # switch that a busy machine's pipelines pay for); a pipeline that reports or
                # ends still cuts it short.
                connection.wait(live, timeout=COLLECT_LINGER)
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
            if msg[0] == "late":  # a source added as the run was ending: it ends too
                if self.changes is not None and msg[2] in self.changes.sources():
                    log.warning("source %s came after the run's sources had ended: it ends", msg[2])
                    self.changes.remove(msg[2])
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
        settings = dataclasses.replace(
            config.settings,
            quarantine=frozenset(k for k, n in offences.items() if n >= limit),
            suspects=frozenset(k for k, n in offences.items() if n < limit),
        )
        self.configs[i] = dataclasses.replace(config, settings=settings)

    def stop(self) -> None:
        started = [p for p in self.procs if p is not None and p.pid is not None]
        for proc in started:
            if proc.is_alive():
                proc.kill()
        for proc in started:
            proc.join(10)


def _any_news(inlets: list[Inlet], requests: queue.SimpleQueue[Any]) -> bool:
    return not requests.empty() or any(inlet.news() for inlet in inlets)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
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
