"""What starts a pipeline process: a child process here (``ProcessLauncher``), or a Ray actor
(``backends.ray_backend.RayLauncher``), behind one protocol."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Protocol

from conveyor.backends.local.worker import WorkerConfig, worker_main
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
