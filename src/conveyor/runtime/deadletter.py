"""Dead letters: items a task could not process, kept with the reason instead of stopping the run.

An item goes to the dead letters when its task raised on it (``on_error="dead_letter"``, the
default, or ``"retry"`` after its retries), or when it crashed or hung its pipeline
``RestartPolicy.quarantine_after`` times. The run goes on without it; downstream sees nothing
for that item (as if the task had returned None), and ``RunResult.dead_letters`` lists it with
the error and the traceback. ``on_error="fail"`` stops the run at the first error instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OnError = Literal["dead_letter", "retry", "fail"]
ON_ERROR: tuple[str, ...] = ("dead_letter", "retry", "fail")


@dataclass(frozen=True)
class DeadLetter:
    """One item a task gave up on."""

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
