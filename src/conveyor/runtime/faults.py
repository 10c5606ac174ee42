"""Injected faults (see ``conveyor.testing``): set around a run by ``inject``, carried in the
run's context to each pipeline, fired there by a ``FaultInjector`` (one of the loop's
instruments)."""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from conveyor._errors import ConfigurationError
from conveyor.runtime.instrument import Instrument, TaskInfo

Mode = Literal["raise", "exit", "kill", "segfault", "hang", "sleep"]
At = Literal["call", "start"]
MODES: tuple[str, ...] = get_args(Mode)


@dataclass(frozen=True)
class Fault:
    task: str
    item: int
    mode: Mode = "raise"
    once: bool = True
    seconds: float = 0.0  # for mode="sleep"
    at: At = "call"  # "call": before the item-th call; "start": as the pipeline starts
    marker: str = ""  # set by inject(): the file that records that a once-fault fired

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigurationError(f"fault mode must be one of {MODES}, got {self.mode!r}")
        if self.item < 0:
            raise ConfigurationError(f"fault item must be >= 0, got {self.item}")
        if self.at not in ("call", "start"):
            raise ConfigurationError(f"fault point must be 'call' or 'start', got {self.at!r}")


# The test's side only: ``inject`` arms faults here and ``conveyor.run`` reads them once as it
# starts (threads included: a test often starts its run in a thread); from there they travel
# in the run's context to each pipeline, never through the environment.
_ARMED: list[Fault] = []
# A program that a test starts inside ``inject`` (a CLI in a subprocess) gets the faults here
# and arms them at its edge with ``from_environment``.
ENV = "CONVEYOR_FAULTS"


def armed() -> tuple[Fault, ...]:
    """The faults armed by ``inject`` blocks open now in this process."""
    return tuple(_ARMED)


@contextlib.contextmanager
def inject(*faults: Fault) -> Iterator[list[Fault]]:
    """Set ``faults`` for the runs started inside the block."""
    folder = tempfile.mkdtemp(prefix="conveyor-faults-")
    armed = [
        Fault(f.task, f.item, f.mode, f.once, f.seconds, f.at, os.path.join(folder, f"f{i}"))
        for i, f in enumerate(faults)
    ]
    _ARMED.extend(armed)
    before = os.environ.get(ENV)
    os.environ[ENV] = json.dumps([dataclasses.asdict(f) for f in _ARMED])
    try:
        yield armed
    finally:
        for f in armed:
            _ARMED.remove(f)
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
        for f in armed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f.marker)
        os.rmdir(folder)


@contextlib.contextmanager
def from_environment() -> Iterator[None]:
    """At a program's edge (its ``main``): arm the faults that a test's ``inject`` handed to
    it in the environment, for the runs it starts. Without them, nothing happens."""
    raw = os.environ.get(ENV)
    faults = [Fault(**spec) for spec in json.loads(raw)] if raw else []
    _ARMED.extend(faults)
    try:
        yield
    finally:
        for f in faults:
            _ARMED.remove(f)


def fired(fault: Fault) -> bool:
    """Whether a once-fault already fired in this run (in any process)."""
    return bool(fault.marker) and os.path.exists(fault.marker)


class FaultInjector(Instrument):
    """Fires the run's injected faults as its pipeline starts and before each call."""

    def __init__(self, faults: Sequence[Fault]) -> None:
        self.by_task: dict[str, list[Fault]] = {}
        for fault in faults:
            self.by_task.setdefault(fault.task, []).append(fault)

    def loop_started(self, tasks: Sequence[TaskInfo]) -> None:
        for task in tasks:
            self._maybe_fail(task.name, 0, at="start")

    def call_started(self, task: TaskInfo, call: int, origins: Sequence[int]) -> None:
        if task.name in self.by_task:
            self._maybe_fail(task.name, call, at="call")

    def _maybe_fail(self, task: str, call: int, at: At) -> None:
        for fault in self.by_task.get(task, ()):
            if fault.at != at or (at == "call" and fault.item != call):
                continue
            if fault.once:
                try:  # O_EXCL: exactly one process fires it
                    os.close(os.open(fault.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    continue
            _fire(fault)


def _fire(fault: Fault) -> None:
    if fault.mode == "raise":
        raise RuntimeError(f"injected fault in {fault.task!r} at item {fault.item}")
    if fault.mode == "exit":
        os._exit(13)
    if fault.mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault.mode == "segfault":
        faulthandler.disable()  # no traceback dump: a quiet crash, like a real one
        faulthandler._sigsegv()  # type: ignore[attr-defined]
    if fault.mode == "hang":
        while True:
            pass
    if fault.mode == "sleep":
        time.sleep(fault.seconds)
