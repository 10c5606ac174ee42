"""Placement across the nodes of a Ray cluster. Pure functions over the graph and the nodes.

``plan_cluster(graph, nodes)`` puts every task on one node (all its replicas there), then each
node's share becomes a graph of its own, placed into pipelines by ``make_plan`` as on one
machine. A multi-node run is one local run per node, joined by *bridges* where an edge crosses
nodes (``backends.bridge``): the producer's node sends its outputs, in order, to a buffer on
the consumer's node, where an inbound source named ``in:PRODUCER`` yields them to the consumer.
Within a node, everything still goes through that node's shared memory.

Rules, in order:

1. A task with ``node="LABEL"`` (cameras: the source of a camera that one host can reach) runs
   on a node that LABEL names: its id, address, hostname, a label's value (or ``key=value``)
   or one of its custom resources.
2. A GPU task goes to a node with a GPU when the cluster has one.
3. Frames never cross nodes (a ``Frame`` is an index into its node's frame store): a task that
   takes frames runs on the node of the source that wrote them.
4. Otherwise a task goes where it finishes soonest: the node whose load (seconds of work per
   item, over its CPUs) stays lowest with the task added, counting ``CROSSING_COST`` for each
   input that would cross nodes. So tasks follow their inputs unless another node is idle
   enough to pay for the transfer; ties go to the node of its inputs, then the driver's node.

A keyed task therefore keeps every key on one node. Costs are those of ``make_plan`` (measured,
hinted or assumed 1 ms).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from conveyor._errors import ConfigurationError
from conveyor.graph import Graph
from conveyor.plan import Plan, make_plan, task_costs
from conveyor.task import TaskSpec

CROSSING_COST = 2e-3  # seconds per item for a message crossing nodes (serialise, send, buffer)
INBOUND = "in:"  # an inbound source is named after the producer it relays: in:PRODUCER


@dataclass(frozen=True)
class NodeSpec:
    """One node of the cluster, as the planner sees it."""

    id: str  # Ray's node id
    cpus: int
    gpus: int = 0
    labels: frozenset[str] = frozenset()  # what a task's node="..." may name
    driver: bool = False  # the node this program runs on

    def __post_init__(self) -> None:
        if self.cpus < 1 or self.gpus < 0:
            raise ConfigurationError(
                f"node {self.id}: expected cpus >= 1 and gpus >= 0, got {self.cpus}, {self.gpus}"
            )

    @property
    def short(self) -> str:
        return self.id[:8]

    def matches(self, label: str) -> bool:
        return label == self.id or label in self.labels


@dataclass(frozen=True)
class Crossing:
    """``producer``'s outputs go from node ``src`` to node ``dst``, where ``consumers``
    (task, parameter) take them from the inbound source ``in:producer``."""

    producer: str
    src: str
    dst: str
    consumers: tuple[tuple[str, str], ...]

    @property
    def inbound(self) -> str:
        return INBOUND + self.producer


@dataclass(frozen=True)
class ClusterPlan:
    graph: Graph
    nodes: tuple[NodeSpec, ...]
    placement: Mapping[str, str]  # task -> node id
    costs: Mapping[str, float]
    reasons: Mapping[str, str] = field(default_factory=dict)
    workers: int | None = None  # at most this many CPU pipelines per node

    @property
    def used(self) -> list[NodeSpec]:
        """The nodes that run at least one task (the driver's first)."""
        busy = set(self.placement.values())
        return sorted((n for n in self.nodes if n.id in busy), key=lambda n: not n.driver)

    def node(self, node_id: str) -> NodeSpec:
        return next(n for n in self.nodes if n.id == node_id)

    def tasks_on(self, node_id: str) -> list[str]:
        return [t for t in self.graph.order if self.placement[t] == node_id]

    def load(self, node_id: str) -> float:
        """Seconds of work per item on the node, over its CPUs (what rule 4 balances)."""
        work = sum(self.costs[t] for t in self.tasks_on(node_id))
        crossing = sum(CROSSING_COST for c in self.crossings if c.dst == node_id)
        return (work + crossing) / self.node(node_id).cpus

    @functools.cached_property
    def crossings(self) -> list[Crossing]:
        found: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for e in self.graph.edges:
            src, dst = self.placement[e.producer], self.placement[e.consumer]
            if src != dst:
                found.setdefault((e.producer, dst), []).append((e.consumer, e.param))
        return [
            Crossing(producer, self.placement[producer], dst, tuple(consumers))
            for (producer, dst), consumers in found.items()
        ]

    def outbound(self, node_id: str) -> list[str]:
        """The producers on ``node_id`` whose outputs another node takes."""
        return list(dict.fromkeys(c.producer for c in self.crossings if c.src == node_id))

    def node_graph(self, node_id: str, inbound: Callable[[Crossing], Callable[[], Any]]) -> Graph:
        """The graph one node runs: its tasks, plus one inbound source per crossing into it
        (``inbound(crossing)`` makes the source's target). Every input of a task is wired by
        name, so an inbound source never makes type-wiring ambiguous."""
        specs: list[TaskSpec] = []
        into = {c.producer: c for c in self.crossings if c.dst == node_id}
        for c in into.values():
            out = self.graph.tasks[c.producer].output
            specs.append(TaskSpec(c.inbound, inbound(c), "source", (), out, cost=CROSSING_COST))
        for name in self.tasks_on(node_id):
            spec = self.graph.tasks[name]
            wire = {}
            for e in self.graph.edges:
                if e.consumer == name:
                    wire[e.param] = into[e.producer].inbound if e.producer in into else e.producer
            specs.append(replace(spec, wire=wire, node=None))
        return Graph(specs)

    def node_plan(self, node_id: str, graph: Graph) -> Plan:
        """``graph`` (from ``node_graph``) placed into pipelines on the node's CPUs and GPUs."""
        node = self.node(node_id)
        workers = node.cpus if self.workers is None else min(self.workers, node.cpus)
        costs = {t: c for t, c in self.costs.items() if t in graph.tasks}
        return make_plan(graph, workers=workers, gpus=node.gpus, costs=costs)

    def describe(self) -> str:
        lines = [f"cluster plan: {len(self.graph.tasks)} tasks on {len(self.used)} node(s)"]
        for node in self.used:
            role = ", the driver's" if node.driver else ""
            lines.append(
                f"  node {node.short} ({node.cpus} CPU, {node.gpus} GPU{role}): "
                f"load {self.load(node.id) * 1e3:.2f} ms/item"
            )
            for t in self.tasks_on(node.id):
                lines.append(f"    {t:<24} {self.costs[t] * 1e3:8.2f} ms   {self.reasons[t]}")
        lines.append(f"  bridges between nodes: {len(self.crossings)}")
        short = {n.id: n.short for n in self.nodes}
        for c in self.crossings:
            to = ", ".join(f"{t}.{p}" for t, p in c.consumers)
            lines.append(f"    {c.producer} ({short[c.src]}) -> {to} ({short[c.dst]})")
        return "\n".join(lines)


def plan_cluster(
    graph: Graph,
    nodes: Sequence[NodeSpec],
    costs: Mapping[str, float] | None = None,
    workers: int | None = None,
) -> ClusterPlan:
    """Place ``graph``'s tasks onto ``nodes`` (see the module's rules)."""
    if not nodes:
        raise ConfigurationError("a cluster plan needs at least one node")
    cost, _ = task_costs(graph, costs)
    placement: dict[str, str] = {}
    reasons: dict[str, str] = {}
    load = {n.id: 0.0 for n in nodes}
    gpu_nodes = [n for n in nodes if n.gpus > 0]
    for name in graph.order:
        spec = graph.tasks[name]
        inputs = [e for e in graph.edges if e.consumer == name]
        candidates, why = list(nodes), ""
        if spec.node is not None:
            candidates = [n for n in nodes if n.matches(spec.node)]
            if not candidates:
                raise ConfigurationError(
                    f"task {name!r}: node={spec.node!r} names no node of the cluster; nodes "
                    f"are {_listing(nodes)}"
                )
            why = f"node={spec.node!r}"
        elif spec.resource == "gpu" and gpu_nodes:
            candidates, why = gpu_nodes, "a GPU task: on a node with a GPU"
        framed = {placement[e.producer] for e in inputs if _holds_frames(e.type)}
        if framed:
            allowed = [n for n in candidates if n.id in framed]
            if len(framed) > 1 or not allowed:
                raise ConfigurationError(
                    f"task {name!r} takes frames from "
                    f"{sorted(e.producer for e in inputs if _holds_frames(e.type))}, which run "
                    f"on {'different nodes' if len(framed) > 1 else 'another node'}: frames "
                    "stay on the node whose source wrote them; decode and pre-process where "
                    "the camera is (node=...) and send smaller messages across"
                )
            candidates, why = allowed, "takes frames: on their source's node"
        home = _home(inputs, placement, cost)
        # What the task adds to each candidate: its own cost plus its inputs that would cross.
        added = {
            n.id: cost[name] + CROSSING_COST * sum(placement[e.producer] != n.id for e in inputs)
            for n in candidates
        }
        best = min(
            candidates,
            key=lambda n: ((load[n.id] + added[n.id]) / n.cpus, n.id != home, not n.driver),
        )
        placement[name] = best.id
        load[best.id] += added[best.id]
        if not why:
            why = "with its inputs" if best.id == home else "least loaded node"
        reasons[name] = why
    return ClusterPlan(graph, tuple(nodes), placement, cost, reasons, workers)


def _home(inputs: Iterable[Any], placement: Mapping[str, str], cost: Mapping[str, float]) -> str:
    """The node that runs most of a task's inputs (by cost), or '' for a source."""
    weight: dict[str, float] = {}
    for e in inputs:
        node = placement[e.producer]
        weight[node] = weight.get(node, 0.0) + cost[e.producer] + 1e-9
    return max(weight, key=lambda k: weight[k]) if weight else ""


def _holds_frames(tp: Any, seen: frozenset[Any] = frozenset()) -> bool:
    """Whether messages of type ``tp`` can hold a ``Frame`` (by their annotations). The planner
    sits below the runtime that defines ``Frame``, so it knows the class by its marker."""
    if tp in seen:
        return False
    if isinstance(tp, type) and getattr(tp, "__conveyor_frame__", False):
        return True
    if any(_holds_frames(a, seen) for a in typing.get_args(tp)):
        return True
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        try:
            hints = typing.get_type_hints(tp)
        except Exception:  # noqa: BLE001 - unresolvable annotations: assume no frames
            return False
        return any(_holds_frames(h, seen | {tp}) for h in hints.values())
    return False


def _listing(nodes: Sequence[NodeSpec]) -> str:
    return "; ".join(f"{n.short} ({', '.join(sorted(n.labels)) or 'no labels'})" for n in nodes)
