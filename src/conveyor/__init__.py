"""conveyor: turn deep-learning inference code into a multi-process pipeline for live video.

The public surface is exactly what ``__all__`` lists (a test checks it). Today that is: tasks and
the graph they form (define), the planner (build; ``plan_cluster`` over Ray nodes), ``run`` and
what it returns (statistics, and the observers that watch a run: ``Dashboard``,
``MetricsServer``), the shared-memory transport, and the error tree.
"""

from conveyor._errors import (
    ChannelBroken,
    ChannelClosed,
    ChannelError,
    ConfigurationError,
    ConveyorError,
    ConveyorTimeout,
    DecodeError,
    EncodeError,
    EndOfChannel,
    FrameStoreError,
    FrameStoreFull,
    PipelineCrashed,
    RemoteTraceback,
    RunStopped,
    StaleFrameError,
    TaskFailed,
)
from conveyor.backends.base import RunResult, run
from conveyor.backends.local import RestartPolicy
from conveyor.cluster_plan import ClusterPlan, NodeSpec, plan_cluster
from conveyor.graph import Edge, Graph
from conveyor.monitor.dashboard import Dashboard
from conveyor.monitor.prometheus import MetricsServer
from conveyor.monitor.stats import PipelineStats, Stats, TaskStats
from conveyor.plan import Plan, make_plan, measure_costs
from conveyor.runtime.checkpoint import Checkpoint
from conveyor.runtime.deadletter import DeadLetter
from conveyor.runtime.frames import Frame, frame_store
from conveyor.runtime.gather import Gather
from conveyor.task import TaskSpec, source, task
from conveyor.transport import (
    CameraSpec,
    Doorbell,
    FrameRef,
    FrameStore,
    Message,
    Ring,
    RingReader,
    RingWriter,
)

__version__ = "0.1.0"

__all__ = [
    "CameraSpec",
    "ChannelBroken",
    "ChannelClosed",
    "ChannelError",
    "Checkpoint",
    "ClusterPlan",
    "ConfigurationError",
    "ConveyorError",
    "ConveyorTimeout",
    "Dashboard",
    "DeadLetter",
    "DecodeError",
    "Doorbell",
    "Edge",
    "EncodeError",
    "EndOfChannel",
    "Frame",
    "FrameRef",
    "FrameStore",
    "FrameStoreError",
    "FrameStoreFull",
    "Gather",
    "Graph",
    "Message",
    "MetricsServer",
    "NodeSpec",
    "PipelineCrashed",
    "Plan",
    "RemoteTraceback",
    "RestartPolicy",
    "Ring",
    "RingReader",
    "RingWriter",
    "RunResult",
    "RunStopped",
    "Stats",
    "TaskStats",
    "PipelineStats",
    "StaleFrameError",
    "TaskFailed",
    "TaskSpec",
    "__version__",
    "frame_store",
    "make_plan",
    "measure_costs",
    "plan_cluster",
    "run",
    "source",
    "task",
]
