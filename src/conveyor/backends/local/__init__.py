"""The local backend (the default): one process per planned pipeline on this machine.

The driver creates every shared object before it starts a process (``resources``): one
doorbell per pipeline (and one for itself), one ring per edge between two pipelines (its
consumer's doorbell to ring on data, its producer's to ring on space), and one ring per
collected task back to the driver. Each pipeline process (``worker``) runs a ``PipelineLoop``
over its tasks and reports how it ended on a pipe; a ``launcher`` starts it (a child process
here, a Ray actor for the Ray backend).

The driver (``supervisor``) blocks in one call on its doorbell, every process sentinel and
every report pipe (never a sleep loop). A task that raises stops the run: the other pipelines
are stopped and the driver raises ``TaskFailed`` with the task, the item and the worker's
traceback as ``__cause__``. A pipeline that dies or hangs is restarted under the
``RestartPolicy``, resuming without loss or duplicates.
"""

from conveyor.backends.local.launcher import Launcher, ProcessLauncher
from conveyor.backends.local.run import run_local
from conveyor.backends.local.sinks import CallbackSink, Sink
from conveyor.backends.local.worker import WorkerConfig, worker_main

__all__ = [
    "CallbackSink",
    "Launcher",
    "ProcessLauncher",
    "Sink",
    "WorkerConfig",
    "run_local",
    "worker_main",
]
