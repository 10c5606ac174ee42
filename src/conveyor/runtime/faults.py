"""Injected faults (see ``conveyor.testing``): read from the environment once per process."""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from conveyor._errors import ConfigurationError

ENV = "CONVEYOR_FAULTS"
MODES = ("raise", "exit", "kill", "segfault", "hang", "sleep")


@dataclass(frozen=True)
class Fault:
    task: str
    item: int
    mode: str = "raise"
    once: bool = True
    seconds: float = 0.0  # for mode="sleep"
    at: str = "call"  # "call": before the item-th call; "start": as the pipeline starts
    marker: str = ""  # set by inject(): the file that records that a once-fault fired

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigurationError(f"fault mode must be one of {MODES}, got {self.mode!r}")
        if self.item < 0:
            raise ConfigurationError(f"fault item must be >= 0, got {self.item}")
        if self.at not in ("call", "start"):
            raise ConfigurationError(f"fault point must be 'call' or 'start', got {self.at!r}")


def _load() -> dict[str, list[Fault]]:
    raw = os.environ.get(ENV)
    if not raw:
        return {}
    out: dict[str, list[Fault]] = {}
    for spec in json.loads(raw):
        fault = Fault(**spec)
        out.setdefault(fault.task, []).append(fault)
    return out


ACTIVE = _load()


def reload() -> None:
    """Read the faults again: for a process whose environment was set after its import (a
    Ray actor receives the driver's environment with its work)."""
    global ACTIVE
    ACTIVE = _load()


@contextlib.contextmanager
def inject(*faults: Fault) -> Iterator[list[Fault]]:
    """Set ``faults`` for the runs started inside the block (and this process)."""
    global ACTIVE
    folder = tempfile.mkdtemp(prefix="conveyor-faults-")
    armed = [
        Fault(f.task, f.item, f.mode, f.once, f.seconds, f.at, os.path.join(folder, f"f{i}"))
        for i, f in enumerate(faults)
    ]
    before = os.environ.get(ENV)
    os.environ[ENV] = json.dumps([asdict(f) for f in armed])
    ACTIVE = _load()
    try:
        yield armed
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
        ACTIVE = _load()
        for f in armed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f.marker)
        os.rmdir(folder)


def fired(fault: Fault) -> bool:
    """Whether a once-fault already fired in this run (in any process)."""
    return bool(fault.marker) and os.path.exists(fault.marker)


def maybe_fail(task: str, call: int, at: str = "call") -> None:
    """Called by the loop before each call of ``task`` (and once as its pipeline starts, with
    ``at="start"``) when faults are active."""
    for fault in ACTIVE.get(task, ()):
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
