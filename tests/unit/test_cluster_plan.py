"""Placement across Ray nodes: pure decisions over the graph and the nodes (no Ray)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import conveyor as cv
from conveyor.cluster_plan import CROSSING_COST, INBOUND
from tests.integration.cluster_fixtures import GRAPH_TASKS, Pair


def nodes(*specs: tuple[str, int, int, set[str]]) -> list[cv.NodeSpec]:
    return [
        cv.NodeSpec(name, cpus, gpus, frozenset(labels), driver=i == 0)
        for i, (name, cpus, gpus, labels) in enumerate(specs)
    ]


@dataclass
class N:
    v: int


@dataclass
class Seen:
    camera: str


TWO = nodes(("node-a", 1, 0, {"store-a"}), ("node-b", 1, 0, {"store-b"}))


def test_labelled_sources_run_where_their_cameras_are() -> None:
    plan = cv.plan_cluster(cv.Graph(GRAPH_TASKS), TWO)
    assert plan.placement["readings_a"] == "node-a"
    assert plan.placement["readings_b"] == "node-b"
    assert "node='store-a'" in plan.reasons["readings_a"]


def test_a_task_follows_its_inputs_unless_another_node_is_idle_enough() -> None:
    plan = cv.plan_cluster(cv.Graph(GRAPH_TASKS), TWO)
    # pair (4 ms) goes with one of its inputs; the tally then prefers the idle node, which
    # pays for the crossing and still finishes sooner.
    assert plan.placement["pair"] == "node-a"
    assert plan.placement["Running"] == "node-b"
    assert plan.reasons["Running"] == "least loaded node"
    assert plan.load("node-a") == pytest.approx((1e-3 + 4e-3 + CROSSING_COST) / 1)
    crossings = {(c.producer, c.src, c.dst) for c in plan.crossings}
    assert crossings == {("readings_b", "node-b", "node-a"), ("pair", "node-a", "node-b")}
    assert plan.outbound("node-a") == ["pair"]
    assert "bridges between nodes: 2" in plan.describe()


def test_cheap_tasks_stay_with_their_inputs() -> None:
    @cv.source(node="store-b")
    def numbers() -> Iterator[N]:
        yield N(1)

    @cv.task
    def double(n: N) -> N:
        return N(2 * n.v)

    plan = cv.plan_cluster(cv.Graph([numbers, double]), TWO)
    assert plan.placement["double"] == "node-b" and plan.crossings == []
    assert [n.id for n in plan.used] == ["node-b"]


def test_each_node_gets_a_graph_with_inbound_sources_wired_by_name() -> None:
    graph = cv.Graph(GRAPH_TASKS)
    plan = cv.plan_cluster(graph, TWO)
    made: list[str] = []

    def inbound(c: object) -> object:
        made.append(c.inbound)  # type: ignore[attr-defined]
        return lambda: iter(())

    on_b = plan.node_graph("node-b", inbound)
    assert set(on_b.tasks) == {"readings_b", INBOUND + "pair", "Running"}
    assert on_b.tasks[INBOUND + "pair"].kind == "source"
    assert on_b.tasks[INBOUND + "pair"].output is Pair
    assert [(e.producer, e.consumer) for e in on_b.edges] == [(INBOUND + "pair", "Running")]
    on_a = plan.node_graph("node-a", inbound)
    assert {(e.producer, e.consumer) for e in on_a.edges} == {
        ("readings_a", "pair"),
        (INBOUND + "readings_b", "pair"),
    }
    assert sorted(made) == [INBOUND + "pair", INBOUND + "readings_b"]
    node_plan = plan.node_plan("node-a", on_a)
    assert sum(len(p.tasks) for p in node_plan.pipelines) == 3


def test_gpu_tasks_go_to_a_node_with_a_gpu() -> None:
    @cv.source
    def numbers() -> Iterator[N]:
        yield N(1)

    @cv.task(resource="gpu")
    def infer(n: N) -> N:
        return n

    cluster = nodes(("cpu-node", 8, 0, set()), ("gpu-node", 4, 1, set()))
    plan = cv.plan_cluster(cv.Graph([numbers, infer]), cluster)
    assert plan.placement["infer"] == "gpu-node"
    assert "GPU" in plan.reasons["infer"]


def test_frames_never_cross_nodes() -> None:
    @cv.source(node="store-a")
    def camera() -> Iterator[cv.Frame]:
        yield from ()

    @cv.task(node="store-b")
    def look(f: cv.Frame) -> Seen:
        return Seen(f.camera)

    with pytest.raises(cv.ConfigurationError, match="frames stay on the node"):
        cv.plan_cluster(cv.Graph([camera, look]), TWO)

    @cv.task(cost=1.0)  # however heavy, it stays with the frames
    def heavy(f: cv.Frame) -> Seen:
        return Seen(f.camera)

    plan = cv.plan_cluster(cv.Graph([camera, heavy]), TWO)
    assert plan.placement["heavy"] == "node-a"
    assert "frames" in plan.reasons["heavy"]


def test_a_label_no_node_has_is_a_clear_error() -> None:
    @cv.source(node="store-z")
    def numbers() -> Iterator[N]:
        yield N(1)

    with pytest.raises(cv.ConfigurationError, match="node='store-z' names no node"):
        cv.plan_cluster(cv.Graph([numbers]), TWO)
    with pytest.raises(cv.ConfigurationError, match="non-empty label"):
        cv.source(node="")(numbers)
    with pytest.raises(cv.ConfigurationError, match="at least one node"):
        cv.plan_cluster(cv.Graph([numbers]), [])
