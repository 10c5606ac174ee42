"""Every test must leave no conveyor segment and no child process behind, even when it fails."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import psutil
import pytest

from conveyor.transport import janitor
from conveyor.transport.segment import leaked_segments, owner_pid, unlink

_CONVEYOR_ACTORS = ("PipelineActor", "NodeRun", "Bridge")


def _children() -> set[int]:
    """Child processes, less the long-lived helpers: our janitor, multiprocessing's tracker, and
    Ray's daemons and idle workers (a Ray backend test's pipeline actors still count)."""
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            line = " ".join(p.cmdline())
            helper = (
                p.pid == janitor.janitor_pid()
                or "resource_tracker" in line
                or ("ray" in line and not any(a in line for a in _CONVEYOR_ACTORS))
            )
        except psutil.NoSuchProcess:
            continue
        if not helper:
            out.add(p.pid)
    return out


def _still_running(pids: set[int], timeout: float) -> set[int]:
    alive = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            alive.append(psutil.Process(pid))
    _, running = psutil.wait_procs(alive, timeout=timeout)
    return {p.pid for p in running}


def _ours(name: str) -> bool:
    """Could this test have made the segment? Not when its owner is a live process outside
    this one's tree (another run on a shared machine: a benchmark beside the tests). A dead
    owner cannot be told apart, so its segments count."""
    pid = owner_pid(name)
    if pid is None or pid == os.getpid():
        return True
    try:
        return os.getpid() in {p.pid for p in psutil.Process(pid).parents()}
    except psutil.NoSuchProcess:
        return True


def _new_segments(before: set[str], wait: float) -> list[str]:
    """Segments made during the test; waits a little for janitors of dead owners to finish."""
    deadline = time.monotonic() + wait
    while True:
        left = [n for n in leaked_segments() if n not in before and _ours(n)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    before_segments = set(leaked_segments())
    before_children = _children()
    yield
    stray = _children() - before_children
    if stray:  # Ray ends a killed or finished actor's process asynchronously: give it time
        stray = _still_running(stray, timeout=10.0)
    procs = []
    for pid in stray:
        try:
            proc = psutil.Process(pid)
            proc.kill()
            procs.append(proc)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5)
    left = _new_segments(before_segments, wait=3.0)
    for name in left:
        unlink(name)
    assert not stray, f"test left child processes running: {sorted(stray)}"
    assert not left, f"test left shared-memory segments: {left}"
