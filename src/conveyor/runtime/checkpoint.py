"""State checkpoints of stateful tasks, so that a restarted pipeline keeps its trackers' state.

A stateful task (a class) keeps state across items: a tracker's tracks and ids. When its
pipeline dies, the replacement must not start afresh. Every ``Checkpoint.items`` items or
``Checkpoint.seconds`` seconds (and whenever its pipeline is about to sleep, or a source waits
for a frame slot), the loop saves the task's instances: ``instance.state()`` where the class
defines ``state()`` and ``restore(state)``, otherwise the pickled instance.

Replay: the inputs a stateful task consumed since its last checkpoint stay uncommitted (their
ring messages and source items are held), so a replacement restores the checkpoint and reads
them again. An input that the checkpoint already covers must not be applied to the state twice:
the checkpoint also keeps the *outputs* the task produced for every input that is not yet
committed, and the replacement re-emits those instead of calling the task. So the state sees
each item once, and downstream sees each output once (the rings drop repeats by origin).

Checkpoints are files under /dev/shm (RAM) named with the run owner's pid, so its janitor
removes them if the whole run dies; written to a temporary name and renamed (atomic).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor._errors import TaskFailed
from conveyor.runtime.lease import Lease
from conveyor.spec import Checkpoint
from conveyor.transport.segment import PREFIX, SHM_DIR


def new_checkpoint_prefix() -> str:
    """A path prefix for one run's checkpoint files (made by the run's owner process)."""
    folder = SHM_DIR if SHM_DIR.is_dir() else Path(tempfile.gettempdir())
    return str(folder / f"{PREFIX}{os.getpid()}-ckpt-{secrets.token_hex(4)}")


def remove_checkpoints(prefix: str) -> None:
    """Delete every file of the run whose checkpoints start with ``prefix``."""
    folder, stem = os.path.split(prefix)
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(folder):
            if name.startswith(stem):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))


@dataclass
class Saved:
    """What a checkpoint holds: each key's state, and the outputs of uncommitted inputs."""

    states: dict[Any, Any]
    outputs: dict[int, Any]  # output origin -> the value the task returned for it


class CheckpointFile:
    """The checkpoint of one stateful task in one pipeline."""

    def __init__(self, prefix: str, task: str, pipeline: int) -> None:
        self.task = task
        self.path = f"{prefix}-{pipeline}-{task}"

    def save(self, instances: dict[Any, Any], outputs: dict[int, Any]) -> None:
        states = {key: _state_of(inst) for key, inst in instances.items()}
        try:
            blob = pickle.dumps(Saved(states, outputs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TaskFailed(
                f"stateful task {self.task!r} cannot be checkpointed: {type(exc).__name__}: "
                f"{exc}. Give the class state() and restore(state) methods that return and take "
                "something picklable, or declare it with checkpoint=False",
                task=self.task,
            ) from exc
        tmp = f"{self.path}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, self.path)  # atomic: a crash leaves the old checkpoint or the new one

    def load(self, cls: Any, make: Callable[[], Any]) -> Saved | None:
        """The last checkpoint, its states turned back into instances of ``cls`` (``make()``
        builds one with the task's arguments)."""
        try:
            with open(self.path, "rb") as f:
                saved: Saved = pickle.load(f)
        except FileNotFoundError:
            return None
        instances = {}
        for key, state in saved.states.items():
            if _has_state_methods(cls):
                inst = make()
                inst.restore(state)
            else:
                inst = state
            instances[key] = inst
        return Saved(instances, saved.outputs)


def _has_state_methods(cls: Any) -> bool:
    return callable(getattr(cls, "state", None)) and callable(getattr(cls, "restore", None))


def _state_of(instance: Any) -> Any:
    return instance.state() if _has_state_methods(type(instance)) else instance


class Saver:
    """The checkpoints of one stateful task while it runs: the inputs it holds for replay,
    the outputs it produced since its last checkpoint, and when the next one is due."""

    def __init__(self, file: CheckpointFile, every: Checkpoint) -> None:
        self.file, self.every = file, every
        self.held: list[Lease] = []  # inputs held until the next checkpoint
        self.recent: dict[int, Any] = {}  # origin -> output, not committed yet
        self.replay: dict[int, Any] = {}  # restored: outputs to re-emit instead of calling
        self.saved_at = time.monotonic()

    def restore(self, cls: Any, make: Callable[[], Any]) -> dict[Any, Any]:
        """The instances of the last checkpoint (none if there is none)."""
        saved = self.file.load(cls, make)
        if saved is None:
            return {}
        self.replay = saved.outputs
        return saved.states

    def hold(self, origin: int, value: Any, lease: Lease) -> None:
        """Until the next checkpoint, hold the input (it is replayed after a crash) and
        remember its output (a replay re-emits it instead of calling the task)."""
        self.recent[origin] = value
        lease.on_release.append(functools.partial(self.recent.pop, origin, None))
        lease.add(1)
        self.held.append(lease)

    def due(self) -> bool:
        if not self.held:
            return False
        return (
            len(self.held) >= self.every.items
            or time.monotonic() - self.saved_at >= self.every.seconds
        )

    def save(self, instances: dict[Any, Any]) -> None:
        """Save the state, then let go of the inputs held for replay."""
        self.file.save(instances, {**self.replay, **self.recent})
        self.saved_at = time.monotonic()
        held, self.held = self.held, []
        for lease in held:
            lease.drop()
