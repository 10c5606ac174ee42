"""Placement: which task runs in which pipeline process, and why. Pure functions, no processes.

``make_plan(graph, workers=2, gpus=0, costs=conveyor.measure_costs(graph))`` packs the graph's tasks
into pipelines:

1. **Cost** of each task, in seconds per item: a measured value (``costs``), else the task's
   ``cost`` hint, else an assumed 1 ms (said so in the plan's reasons). A source bound once
   per camera makes only its share of the items that flow below it: its load is its cost
   times that share (one of 8 cameras: 1/8), so that loads add up per item of the graph.
2. **GPU tasks** go to one pipeline per device (the model loads once per process); with no GPU
   they run on the CPU like any other task, and the plan says so.
3. **Replicas.** A task left at ``replicas="auto"`` (the default) whose cost alone exceeds the
   balanced share of one pipeline is split into replicas when it can be (one input; stateless,
   or keyed: then each key stays with one replica; not a sink): each takes every k-th item and
   the runtime restores the order. A fixed ``replicas=k`` is taken as given.
4. **CPU packing** minimises the most loaded pipeline (min-max): longest units first, each into
   the least loaded pipeline (LPT, within 4/3 of optimal); among pipelines whose load is within
   10% of the least, one that already holds a neighbour in the graph wins, so tasks that
   exchange data stay together when that costs (almost) nothing.

``Plan.describe()`` prints the placement with loads and reasons; ``Plan.to_dot()`` and
``Plan.to_png()`` draw it. ``Plan.replan(run.stats)`` places the tasks again from a run's
measured costs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from conveyor._errors import ConfigurationError
from conveyor.graph import Edge, Graph
from conveyor.plan_drawing import draw_plan
from conveyor.task import Resource


class _TaskMeasure(Protocol):
    busy: float
    items_in: int


class Measured(Protocol):
    """What ``replan`` reads of a run's statistics (``conveyor.Stats``)."""

    @property
    def tasks(self) -> Mapping[str, _TaskMeasure]: ...


DEFAULT_COST = 1e-3  # seconds per item assumed for a task with no measurement and no hint
NEAR = 0.10  # "about as light": within 10% of the least loaded pipeline
REPLICA_GAIN = 0.15  # automatic replicas must lower the bottleneck by at least this much


@dataclass(frozen=True)
class PlacedUnit:
    """One placeable piece: a task, or one replica of it."""

    task: str
    replica: int  # 0..replicas-1
    replicas: int
    cost: float  # seconds per item of the task's stream that this unit handles

    @property
    def label(self) -> str:
        return self.task if self.replicas == 1 else f"{self.task}#{self.replica}"


@dataclass(frozen=True)
class PipelineSpec:
    """One planned pipeline (a process): its index, its resource kind and the units it runs."""

    index: int
    resource: Resource
    units: tuple[PlacedUnit, ...]
    device: int | None = None  # GPU index for a GPU pipeline

    @property
    def load(self) -> float:
        """Estimated busy seconds per item flowing through the graph."""
        return sum(u.cost for u in self.units)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(u.task for u in self.units))

    @property
    def name(self) -> str:
        kind = f"gpu{self.device}" if self.resource == "gpu" else "cpu"
        return f"p{self.index}-{kind}"


@dataclass(frozen=True)
class Plan:
    graph: Graph
    pipelines: tuple[PipelineSpec, ...]
    costs: Mapping[str, float]
    reasons: Mapping[str, str] = field(default_factory=dict)
    workers: int = 0  # the CPU pipelines it was allowed (0: as many as it has)
    gpus: int = 0

    def replan(self, stats: Measured) -> Plan:
        """The plan again from what a run measured: each task's cost becomes its busy seconds
        per item in ``stats`` (a task that processed nothing keeps its hint), with the same
        workers and GPUs. Compare ``self.with_costs(...)`` and the result's bottlenecks."""
        workers = self.workers or sum(p.resource == "cpu" for p in self.pipelines) or 1
        return make_plan(self.graph, workers, self.gpus, measured_costs(stats, self.graph))

    def with_costs(self, costs: Mapping[str, float]) -> Plan:
        """The same placement with its loads computed from ``costs`` (e.g. measured ones)."""
        cost = {**self.costs, **costs}
        load = loads(self.graph, cost)
        pipelines = tuple(
            replace(p, units=tuple(replace(u, cost=load[u.task] / u.replicas) for u in p.units))
            for p in self.pipelines
        )
        return replace(self, pipelines=pipelines, costs=cost)

    def placement(self) -> dict[str, list[int]]:
        """Task name -> indices of the pipelines running it (several with replicas)."""
        out: dict[str, list[int]] = {}
        for p in self.pipelines:
            for u in p.units:
                out.setdefault(u.task, []).append(p.index)
        return out

    def replicas_of(self, task: str) -> list[int]:
        """The pipeline of each replica of ``task``, in replica order (one if not replicated)."""
        found = sorted(
            (u.replica, p.index) for p in self.pipelines for u in p.units if u.task == task
        )
        return [index for _, index in found]

    def pipeline_of(self, task: str) -> int:
        """The pipeline of a task that is not replicated."""
        places = self.replicas_of(task)
        if len(places) != 1:
            raise ConfigurationError(
                f"task {task!r} runs as {len(places)} replicas: use replicas_of({task!r})"
            )
        return places[0]

    def cross_edges(self) -> list[Edge]:
        """Edges whose ends run in different pipelines: these become shared-memory rings."""
        where = self.placement()
        return [
            e
            for e in self.graph.edges
            if set(where[e.producer]) != set(where[e.consumer]) or len(where[e.producer]) > 1
        ]

    @property
    def bottleneck(self) -> PipelineSpec:
        return max(self.pipelines, key=lambda p: p.load)

    def describe(self) -> str:
        top = self.bottleneck.load or 1.0
        lines = [
            f"plan: {len(self.graph.tasks)} tasks on {len(self.pipelines)} pipeline(s); "
            f"bottleneck {self.bottleneck.name} at {top * 1e3:.2f} ms per item "
            f"(about {1 / top if top else float('inf'):.0f} items/s)"
        ]
        for p in self.pipelines:
            lines.append(
                f"  {p.name}: load {p.load * 1e3:.2f} ms/item "
                f"({100 * p.load / top:.0f}% of the bottleneck)"
            )
            for u in p.units:
                lines.append(
                    f"    {u.label:<24} {u.cost * 1e3:8.2f} ms   {self.reasons.get(u.task, '')}"
                )
        crossing = self.cross_edges()
        lines.append(f"  channels between pipelines: {len(crossing)}")
        lines += [f"    {e}" for e in crossing]
        return "\n".join(lines)

    def to_png(self, path: str) -> str:
        """Draw the plan as a PNG (matplotlib; see ``plan_drawing``); returns the path."""
        return str(draw_plan(self, path))

    def to_dot(self) -> str:
        """Graphviz source: one cluster per pipeline, one node per unit."""
        out = ["digraph plan {", "  rankdir=LR; node [shape=box, fontname=Helvetica];"]
        for p in self.pipelines:
            out.append(
                f'  subgraph cluster_{p.index} {{ label="{p.name} ({p.load * 1e3:.1f} ms/item)";'
            )
            out += [f'    "{u.label}";' for u in p.units]
            out.append("  }")
        labels = {
            t: [u.label for p in self.pipelines for u in p.units if u.task == t]
            for t in self.graph.tasks
        }
        for e in self.graph.edges:
            for a in labels[e.producer]:
                for b in labels[e.consumer]:
                    out.append(f'  "{a}" -> "{b}" [label="{e.type.__name__}"];')
        out.append("}")
        return "\n".join(out)


def detect_gpus() -> int:
    """NVIDIA GPUs this process may use (the driver's list, narrowed by CUDA_VISIBLE_DEVICES)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def task_costs(
    graph: Graph, costs: Mapping[str, float] | None = None
) -> tuple[dict[str, float], dict[str, str]]:
    """Seconds per item of every task, and where each figure comes from: a measured value in
    ``costs``, else the task's ``cost`` hint, else an assumed ``DEFAULT_COST``."""
    costs = dict(costs or {})
    unknown = set(costs) - set(graph.tasks)
    if unknown:
        raise ConfigurationError(f"costs name tasks not in the graph: {sorted(unknown)}")
    reasons: dict[str, str] = {}
    cost: dict[str, float] = {}
    for name, spec in graph.tasks.items():
        if name in costs:
            cost[name], reasons[name] = float(costs[name]), "measured"
        elif spec.cost is not None:
            cost[name], reasons[name] = float(spec.cost), "cost hint"
        else:
            cost[name], reasons[name] = DEFAULT_COST, "no measurement: assumed 1 ms"
    return cost, reasons


def loads(graph: Graph, cost: Mapping[str, float]) -> dict[str, float]:
    """Busy seconds of each task per item flowing through the graph: its cost, times the
    share of the items it makes for a source bound once per camera (1/8 of 8 cameras, as
    if the cameras went at one rate)."""
    return {n: cost[n] / (1 + len(graph.merged_with(n))) for n in graph.tasks}


def make_plan(
    graph: Graph,
    workers: int = 2,
    gpus: int = 0,
    costs: Mapping[str, float] | None = None,
) -> Plan:
    """Place ``graph`` onto ``workers`` CPU pipelines (plus one per GPU used)."""
    if workers < 1:
        raise ConfigurationError(f"workers must be at least 1, got {workers}")
    if gpus < 0:
        raise ConfigurationError(f"gpus must be 0 or more, got {gpus}")
    measured, reasons = task_costs(graph, costs)
    cost = loads(graph, measured)  # what packing balances
    for n in graph.tasks:
        if cost[n] != measured[n]:
            share = cost[n] / measured[n]
            reasons[n] += f"; {measured[n] * 1e3:.2f} ms per own item, {share:.0%} of the items"

    gpu_tasks = [n for n in graph.order if graph.tasks[n].resource == "gpu"]
    if gpu_tasks and not gpus:
        for n in gpu_tasks:
            reasons[n] += "; no GPU: runs on the CPU"
        gpu_tasks = []
    cpu_tasks = [n for n in graph.order if n not in gpu_tasks]

    pipelines: list[PipelineSpec] = []
    # GPU tasks: one pipeline per device, balanced across devices.
    if gpu_tasks:
        devices = min(gpus, len(gpu_tasks))
        gpu_bins = _pack([_unit(n, cost, 1) for n in gpu_tasks], devices, graph)
        for d, units in enumerate(gpu_bins):
            for u in units:
                reasons[u.task] += f"; GPU {d}"
            pipelines.append(PipelineSpec(len(pipelines), "gpu", tuple(units), device=d))

    # CPU tasks: replicas where one task would be the bottleneck on its own, then min-max; but
    # automatic replicas only where they lower the bottleneck clearly, since splitting a task
    # adds channels whose copies the costs do not show.
    split, split_reasons = _place_cpu(graph, cpu_tasks, cost, workers, dict(reasons), auto=True)
    whole, whole_reasons = _place_cpu(graph, cpu_tasks, cost, workers, dict(reasons), auto=False)
    top = max((sum(u.cost for u in b) for b in split), default=0.0)
    top_whole = max((sum(u.cost for u in b) for b in whole), default=0.0)
    if split != whole and top > (1 - REPLICA_GAIN) * top_whole:
        bins, reasons = whole, whole_reasons
        for n in cpu_tasks:
            if split_reasons[n] != whole_reasons[n] and graph.tasks[n].replicas == "auto":
                reasons[n] += f"; not split: replicas would gain < {REPLICA_GAIN:.0%}"
    else:
        bins, reasons = split, split_reasons
    for b in bins:
        if b:
            pipelines.append(PipelineSpec(len(pipelines), "cpu", tuple(b)))
    return Plan(graph, tuple(pipelines), measured, reasons, workers, gpus)


def measured_costs(stats: Measured, graph: Graph) -> dict[str, float]:
    """Seconds per item of every task of ``graph`` that processed something in ``stats``."""
    return {
        n: t.busy / t.items_in for n, t in stats.tasks.items() if t.items_in and n in graph.tasks
    }


def _place_cpu(
    graph: Graph,
    cpu_tasks: list[str],
    cost: Mapping[str, float],
    workers: int,
    reasons: dict[str, str],
    auto: bool,
) -> tuple[list[list[PlacedUnit]], dict[str, str]]:
    share = sum(cost[n] for n in cpu_tasks) / workers
    count: dict[str, int] = {}
    # Heaviest first: when two neighbours both want replicas, the heavier one gets them.
    for n in sorted(cpu_tasks, key=lambda n: -cost[n]):
        k = 1
        if auto or graph.tasks[n].replicas != "auto":
            k = _replicas(graph, n, cost[n], share, workers, reasons)
        near = [e.producer for e in graph.inputs_of(n)] + [e.consumer for e in graph.outputs_of(n)]
        split = [m for m in near if count.get(m, 1) > 1]
        if k > 1 and split:
            if graph.tasks[n].replicas != "auto" and graph.tasks[split[0]].replicas != "auto":
                raise ConfigurationError(
                    f"tasks {n!r} and {split[0]!r} are both replicated and one feeds the "
                    "other; a replicated task cannot feed another directly: merge the two "
                    "into one task, or give one of them replicas=1"
                )
            if graph.tasks[n].replicas == "auto":
                k = 1
                why = f"; not replicated (its neighbour {split[0]!r} is)"
                reasons[n] = reasons[n].split("; ")[0] + why
            else:  # a declared count wins over an automatic one
                other = split[0]
                count[other] = 1
                reasons[other] = reasons[other].split("; ")[0] + (
                    f"; not replicated (its neighbour {n!r} is)"
                )
        count[n] = k
    units = [_unit(n, cost, count[n], r) for n in cpu_tasks for r in range(count[n])]
    bins = _pack(units, min(workers, max(1, len(units))), graph)  # replicas <= workers
    return bins, reasons


def _unit(name: str, cost: Mapping[str, float], k: int, r: int = 0) -> PlacedUnit:
    return PlacedUnit(name, r, k, cost[name] / k)


def _replicas(
    graph: Graph, name: str, cost: float, share: float, workers: int, reasons: dict[str, str]
) -> int:
    spec = graph.tasks[name]
    if spec.replicas != "auto":
        k = min(int(spec.replicas), workers)
        if spec.replicas > 1:
            reasons[name] += f"; {k} replicas (declared {spec.replicas}"
            reasons[name] += ", at most one per pipeline)" if k < spec.replicas else ")"
        return k
    # A sink's side effects (files, sockets) would interleave across processes: never split
    # one unless asked to.
    if not spec.replicable or spec.kind == "sink" or cost <= share:
        return 1
    k = min(workers, math.ceil(cost / share))
    streams = len(graph.streams_into(name))
    if streams:  # fed by sources per camera: each replica takes whole streams
        k = min(k, streams)
    if k > 1:
        reasons[name] += f"; {k} replicas (alone it would exceed a pipeline's share)"
    return k


def _pack(units: list[PlacedUnit], bins: int, graph: Graph) -> list[list[PlacedUnit]]:
    """Min-max packing: LPT, with ties (within NEAR) going to a pipeline holding a neighbour."""
    neighbours: dict[str, set[str]] = {n: set() for n in graph.tasks}
    for e in graph.edges:
        neighbours[e.producer].add(e.consumer)
        neighbours[e.consumer].add(e.producer)
    out: list[list[PlacedUnit]] = [[] for _ in range(bins)]
    loads = [0.0] * bins
    # Longest first; graph order breaks ties so equal plans come out the same every time.
    rank = {n: i for i, n in enumerate(graph.order)}
    for unit in sorted(units, key=lambda u: (-u.cost, rank[u.task], u.replica)):
        # Replicas of one task go to different pipelines (a pipeline runs a task once).
        free = [i for i in range(bins) if all(u.task != unit.task for u in out[i])]
        least = min(loads[i] for i in free)
        near = [i for i in free if loads[i] <= least + NEAR * max(least, unit.cost)]
        friendly = [i for i in near if any(u.task in neighbours[unit.task] for u in out[i])]
        choice = min(friendly or near, key=lambda i: (loads[i], i))
        out[choice].append(unit)
        loads[choice] += unit.cost
    # Inside a pipeline, keep graph order (easier to read; sources first).
    return [sorted(b, key=lambda u: (rank[u.task], u.replica)) for b in out]
