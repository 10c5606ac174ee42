"""The value types a user declares and a run's results expose: plain frozen dataclasses with
no behaviour beyond checking themselves, at the bottom of the layers (``task``, ``plan``, the
transport, the runtime and the backends all build on them; they import only ``_errors``).

- ``CameraSpec``: one camera's frames in the frame store.
- ``Checkpoint``: how often a stateful task's state is saved (``runtime.checkpoint``).
- ``Gather``: how a gathering task groups its input (``runtime.gather``).
- ``DeadLetter``, ``OnError``: items a task gave up on, and what a task does on an error.
- ``RestartPolicy``, ``Restart``: how crashed and hung pipelines are handled, and each restart.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from conveyor._errors import ConfigurationError


@dataclass(frozen=True)
class CameraSpec:
    """One camera's frames: name, frame shape (e.g. (1080, 1920, 3)), dtype, number of slots."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "uint8"
    slots: int = 8

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigurationError("camera name must not be empty")
        if not self.shape or any(int(d) <= 0 for d in self.shape):
            raise ConfigurationError(
                f"camera {self.name!r}: expected a shape of positive sizes, got {self.shape}"
            )
        if self.slots < 2:
            raise ConfigurationError(
                f"camera {self.name!r}: expected at least 2 slots, got {self.slots}"
            )
        try:
            np.dtype(self.dtype)
        except TypeError:
            raise ConfigurationError(
                f"camera {self.name!r}: {self.dtype!r} is not a numpy dtype"
            ) from None

    @property
    def frame_bytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Checkpoint:
    """How often a stateful task's state is saved: every ``items`` items or ``seconds``
    seconds, whichever comes first. ``@conveyor.task(checkpoint=False)`` turns it off (a
    replacement then starts with fresh instances)."""

    items: int = 32
    seconds: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.items, int) or self.items < 1:
            raise ConfigurationError(f"Checkpoint.items must be a positive int, got {self.items!r}")
        if not isinstance(self.seconds, (int, float)) or self.seconds <= 0:
            raise ConfigurationError(
                f"Checkpoint.seconds must be a positive number, got {self.seconds!r}"
            )


@dataclass(frozen=True)
class Gather:
    """How a gathering task groups its input (see the module docstring)."""

    by: str
    member: str
    window: float | None = None

    def __post_init__(self) -> None:
        for name in ("by", "member"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.isidentifier():
                raise ConfigurationError(
                    f"Gather({name}=...) must name an attribute of the message, got {value!r}"
                )
        if self.window is not None and not self.window > 0:
            raise ConfigurationError(
                f"Gather(window=...) must be a positive number of seconds, got {self.window!r}"
            )

    def key_of(self, value: Any) -> Hashable:
        raw = _attr(value, self.by)
        key: Hashable = math.floor(raw / self.window) if self.window else raw
        return key

    def member_of(self, value: Any) -> Hashable:
        member: Hashable = _attr(value, self.member)
        return member


def _attr(value: Any, name: str) -> Any:
    try:
        return getattr(value, name)
    except AttributeError:
        raise ConfigurationError(
            f"a gathering task groups by {name!r}, but a {type(value).__name__} message has "
            "no such attribute"
        ) from None


OnError = Literal["dead_letter", "retry", "fail"]
ON_ERROR: tuple[str, ...] = ("dead_letter", "retry", "fail")


@dataclass(frozen=True)
class DeadLetter:
    """One item a task gave up on.

    Dead letters: items a task could not process, kept with the reason instead of stopping the run.

    An item goes to the dead letters when its task raised on it (``on_error="dead_letter"``, the
    default, or ``"retry"`` after its retries), or when it crashed or hung its pipeline
    ``RestartPolicy.quarantine_after`` times. The run goes on without it; downstream sees nothing
    for that item (as if the task had returned None), and ``RunResult.dead_letters`` lists it with
    the error and the traceback. ``on_error="fail"`` stops the run at the first error instead.
    """

    task: str
    origin: int  # the item's id in the run (stable across restarts)
    item: str  # repr of the input, shortened (no pixels are kept)
    reason: Literal["raised", "crashed", "hung"]
    error: str  # the exception, or how the pipeline died
    traceback: str = ""
    attempts: int = 1

    def __str__(self) -> str:
        return (
            f"{self.task}: {self.reason} after {self.attempts} attempt(s): {self.error} "
            f"(item: {self.item})"
        )


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
