"""What starts a pipeline process: a child process here (``ProcessLauncher``), or a Ray actor
(``backends.ray_backend.RayLauncher``), behind one protocol."""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Protocol

from conveyor.backends.local.worker import WorkerConfig, process_main
from conveyor.plan import Plan


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


@dataclasses.dataclass
class _Process:
    """A started child process waiting for its config on ``orders``."""

    proc: Any  # multiprocessing's SpawnProcess
    orders: Connection  # the config goes here
    report: Connection  # how it ends comes back here


class ProcessLauncher:
    """Pipelines as child processes of this one (the spawn start method).

    Once every pipeline of the plan is launched, one *warm spare* waits: a child that has
    imported the graph's modules and takes the config of the next pipeline to start, so that
    a restart does not pay Python's start and imports again (about 1 s for peopleflow's
    pipeline: the seconds a live camera goes unseen). ``spare=False``: none."""

    backend = "local"

    def __init__(self, spare: bool = True) -> None:
        self.ctx = mp.get_context("spawn")
        self.spare = spare
        self._modules: tuple[str, ...] = ()
        self._first_round = 0  # launches before the spare starts (the plan's pipelines)
        self._launched = 0
        self._waiting: _Process | None = None

    def default_workers(self) -> int:
        return os.cpu_count() or 2

    def prepare(self, plan: Plan) -> None:
        targets = (spec.target for spec in plan.graph.tasks.values())
        self._modules = tuple(sorted({t.__module__ for t in targets} - {"__main__"}))
        self._first_round = len(plan.pipelines)

    def close(self) -> None:
        spare, self._waiting = self._waiting, None
        if spare is not None:
            _discard(spare)

    def launch(
        self, config: WorkerConfig, name: str, register: Callable[[Any, Connection | None], None]
    ) -> None:
        config = dataclasses.replace(config, parent_pid=os.getpid())
        child = self._take_spare(name, register, config)
        if child is None:
            child = self._start(name, (), register)
            child.orders.send(config)
        child.orders.close()
        self._launched += 1
        if self.spare and self._launched >= self._first_round:
            self._waiting = self._start("conveyor-spare", self._modules, None)

    def _take_spare(
        self, name: str, register: Callable[[Any, Connection | None], None], config: WorkerConfig
    ) -> _Process | None:
        """The waiting spare, given ``config`` (None: there is none, or it died)."""
        spare, self._waiting = self._waiting, None
        if spare is None:
            return None
        if spare.proc.is_alive():
            spare.proc.name = name
            register(spare.proc, spare.report)
            try:
                spare.orders.send(config)
                return spare
            except (BrokenPipeError, ConnectionResetError):  # it died just now
                pass
        _discard(spare)
        return None

    def _start(
        self,
        name: str,
        modules: tuple[str, ...],
        register: Callable[[Any, Connection | None], None] | None,
    ) -> _Process:
        orders_in, orders_out = self.ctx.Pipe(duplex=False)
        report_in, report_out = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(
            target=process_main,
            args=(os.getpid(), modules, orders_in, report_out),
            name=name,
            daemon=True,
        )
        if register is not None:
            register(proc, report_in)
        try:
            proc.start()
        finally:
            with contextlib.suppress(OSError):
                orders_in.close()
                report_out.close()
        return _Process(proc, orders_out, report_in)


def _discard(spare: _Process) -> None:
    """A spare nobody will use: it exits once its pipe closes (killed if still importing)."""
    spare.orders.close()
    spare.proc.join(0.5)
    if spare.proc.is_alive():
        spare.proc.kill()
        spare.proc.join(5)
    spare.report.close()
