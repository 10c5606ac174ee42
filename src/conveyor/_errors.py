"""Every exception conveyor raises, in one tree.

    ConveyorError
     ├── ConfigurationError (ValueError)   bad argument at a public boundary: "expected X, got Y"
     ├── EncodeError (TypeError)           a value cannot cross processes; names the field path
     ├── DecodeError                       a message in shared memory is not one we wrote
     ├── ConveyorTimeout (TimeoutError)    a blocking call ran past its timeout
     ├── TaskFailed                        user code raised; carries task, item, traceback
     ├── RemoteTraceback                   a worker's traceback as text (rides as __cause__)
     ├── PipelineCrashed                   a pipeline process died (exit code or signal)
     ├── RunStopped                        a run called off from outside (a cluster's driver)
     ├── ChannelError
     │    ├── ChannelClosed                closed by us: this endpoint was closed, then used
     │    ├── EndOfChannel                 the producer closed cleanly and everything was read
     │    └── ChannelBroken                broken by the peer: the other process died
     └── FrameStoreError
          ├── StaleFrameError              the slot was reused: the reference is too old
          └── FrameStoreFull               every slot of the camera is held by readers

"Closed by us" (ChannelClosed) and "broken by the peer" (ChannelBroken) are apart on purpose
(as in trio): the first is a bug or a shutdown in this process, the second is a crash elsewhere
that a supervisor can repair. Timeouts also subclass the builtin TimeoutError, so code that
catches TimeoutError keeps working.
"""

from __future__ import annotations

from typing import Any


class ConveyorError(Exception):
    """Base class of every error conveyor raises."""


class ConfigurationError(ConveyorError, ValueError):
    """A bad argument at a public boundary."""


class EncodeError(ConveyorError, TypeError):
    """A value cannot cross processes.

    ``path`` names the offending field, for example ``Detections.boxes[3]``.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class DecodeError(ConveyorError):
    """Bytes in shared memory are not a message this version of conveyor wrote."""


class ConveyorTimeout(ConveyorError, TimeoutError):
    """A blocking call ran past its timeout."""


class TaskFailed(ConveyorError):
    """A task's code raised. ``task``, ``item`` and the worker's ``remote_traceback`` say
    where; in the parent, the worker's traceback also rides as ``__cause__``."""

    def __init__(
        self, message: str, task: str = "", item: str = "", remote_traceback: str = ""
    ) -> None:
        super().__init__(message)
        self.task = task
        self.item = item
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0], self.task, self.item, self.remote_traceback))


class RemoteTraceback(ConveyorError):
    """The traceback of an exception raised in another process, as text."""

    def __str__(self) -> str:
        return "\n\n" + str(self.args[0]) if self.args else ""


class PipelineCrashed(ConveyorError):
    """A pipeline process died without reporting an error (a signal or a hard exit)."""

    def __init__(self, message: str, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode


class ChannelError(ConveyorError):
    """Base class of channel errors."""


class ChannelClosed(ChannelError):
    """This endpoint was closed by its own process and then used."""


class EndOfChannel(ChannelError):
    """The producer closed the channel cleanly and every message has been read."""


class ChannelBroken(ChannelError):
    """The process at the other end died (it did not close the channel)."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class FrameStoreError(ConveyorError):
    """Base class of frame store errors."""


class StaleFrameError(FrameStoreError):
    """A frame reference names a slot that has since been rewritten."""


class FrameStoreFull(FrameStoreError):
    """Every slot of a camera is held by readers, so no frame can be written now."""


class RunStopped(ConveyorError):
    """A run called off from outside (``run_local(stop=...)``: a cluster's driver stops the
    other nodes' runs when one fails); its processes and shared memory are released."""
