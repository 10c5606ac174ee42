"""What every backend returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.cluster_plan import ClusterPlan
from conveyor.monitor.stats import Stats
from conveyor.plan import Plan
from conveyor.spec import DeadLetter, Restart


@dataclass
class RunResult:
    """The outcome of a finished run: per collected task its outputs, the plan it ran, the
    pipelines restarted, the items given up on, and what each task and pipeline did."""

    backend: str
    elapsed: float
    outputs: dict[str, list[Any]] = field(default_factory=dict)  # for tasks named in collect
    plan: Plan | None = None
    restarts: list[Restart] = field(default_factory=list)  # local backend: pipelines restarted
    dead_letters: list[DeadLetter] = field(default_factory=list)  # items given up on
    stats: Stats | None = None  # what each task and pipeline did (monitor.stats)
    trace: Path | None = None  # the timeline trace file, when the run was traced
    cluster: ClusterPlan | None = None  # a run spread over Ray nodes (plan is then None)
