"""conveyor: turn deep-learning inference code into a multi-process pipeline for live video.

The public surface is exactly ``__all__`` (a test checks it): tasks and the graph they form
(define), the planner (build; ``plan_cluster`` over Ray nodes), ``run``, ``start`` (a
``RunHandle``: cameras added and removed while the run goes on) and every type its
result exposes (statistics, restarts, dead letters), the observers that watch a run
(``Dashboard``, ``MetricsServer``), frames, and the errors a run raises. The shared-memory
transport's low-level pieces (rings, the frame store, doorbells, the codec) and the errors only
they raise are in ``conveyor.transport``; fault injection for tests is in ``conveyor.testing``.
"""

from conveyor._errors import (
    ConfigurationError,
    ConveyorError,
    ConveyorTimeout,
    PipelineCrashed,
    RemoteTraceback,
    RunStopped,
    TaskFailed,
)
from conveyor.api import Backend, run, start
from conveyor.backends.base import RunResult
from conveyor.backends.inline import measure_costs
from conveyor.backends.local.handle import RunHandle
from conveyor.cluster_plan import ClusterPlan, NodeSpec, plan_cluster
from conveyor.graph import Edge, Graph
from conveyor.monitor.dashboard import Dashboard
from conveyor.monitor.prometheus import MetricsServer
from conveyor.monitor.stats import PipelineStats, Stats, TaskStats
from conveyor.plan import PipelineSpec, PlacedUnit, Plan, make_plan
from conveyor.runtime.frames import Frame, frame_store
from conveyor.spec import CameraSpec, Checkpoint, DeadLetter, Gather, Restart, RestartPolicy
from conveyor.task import TaskSpec, bind, source, task

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "CameraSpec",
    "Checkpoint",
    "ClusterPlan",
    "ConfigurationError",
    "ConveyorError",
    "ConveyorTimeout",
    "Dashboard",
    "DeadLetter",
    "Edge",
    "Frame",
    "Gather",
    "Graph",
    "MetricsServer",
    "NodeSpec",
    "PipelineCrashed",
    "PipelineSpec",
    "PipelineStats",
    "PlacedUnit",
    "Plan",
    "RemoteTraceback",
    "Restart",
    "RestartPolicy",
    "RunHandle",
    "RunResult",
    "RunStopped",
    "Stats",
    "TaskFailed",
    "TaskSpec",
    "TaskStats",
    "__version__",
    "bind",
    "frame_store",
    "make_plan",
    "measure_costs",
    "plan_cluster",
    "run",
    "source",
    "start",
    "task",
]
