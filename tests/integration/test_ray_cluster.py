"""One graph over a simulated two-node Ray cluster (``ray.cluster_utils.Cluster``, both nodes
on this machine): it is placed as planned, crosses nodes through bridges, and its outputs equal
the inline backend's, also when a pipeline is killed mid-run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import conveyor as cv
from conveyor.runtime.faults import fired
from conveyor.testing import Fault, inject, simulated_cluster
from conveyor.transport.segment import owner_pid, sweep_orphans
from tests.integration.cluster_fixtures import GRAPH_TASKS, ITEMS


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install ray")
    with simulated_cluster("store-a", "store-b") as sim:
        yield sim


def ray_module() -> Any:
    import ray

    return ray


def tallies(result: cv.RunResult) -> list[tuple[int, float]]:
    return [(t.index, round(t.total, 9)) for t in result.outputs["Running"]]


def test_the_graph_spreads_over_the_nodes_as_planned_and_equals_inline(cluster: Any) -> None:
    from conveyor.backends.ray_cluster import cluster_nodes

    graph = cv.Graph(GRAPH_TASKS)
    plan = cv.plan_cluster(graph, cluster_nodes(ray_module()))
    assert len(plan.used) == 2, plan.describe()
    assert plan.placement["pair"] != plan.placement["Running"]  # both nodes do real work
    assert plan.crossings, plan.describe()

    inline = cv.run(graph, backend="inline", collect=["Running"])
    got = cv.run(graph, backend="ray", plan=plan, collect=["Running"])
    assert len(inline.outputs["Running"]) == ITEMS
    assert tallies(got) == tallies(inline)  # the same totals in the same order
    # Every task ran on the node the plan gave it.
    want = tuple(plan.placement[t] for t in ("readings_a", "readings_b", "pair", "Running"))
    assert {t.nodes for t in got.outputs["Running"]} == {want}
    assert len(set(want)) == 2
    assert got.cluster is plan and got.stats is not None
    assert got.stats.tasks["Running"].items_in == ITEMS
    assert {p.name.split("/")[0] for p in got.stats.pipelines} == {n.short for n in plan.used}


def test_a_killed_pipeline_behind_a_bridge_loses_and_doubles_nothing(cluster: Any) -> None:
    graph = cv.Graph(GRAPH_TASKS)
    inline = cv.run(graph, backend="inline", collect=["Running"])
    with inject(Fault("Running", item=25, mode="kill")):
        got = cv.run(graph, backend="ray", collect=["Running"])
    assert got.cluster is not None and len(got.cluster.used) == 2
    assert len(got.restarts) == 1 and got.restarts[0].reason.startswith("died")
    assert tallies(got) == tallies(inline)


def test_a_dead_letter_on_a_remote_node_reaches_the_driver(cluster: Any) -> None:
    graph = cv.Graph(GRAPH_TASKS)
    with inject(Fault("pair", item=7, mode="raise")):
        got = cv.run(graph, backend="ray", collect=["Running"])
    assert [(d.task, d.reason) for d in got.dead_letters] == [("pair", "raised")]
    assert len(got.outputs["Running"]) == ITEMS - 1


def test_a_node_that_leaves_mid_run_has_its_share_placed_again(cluster: Any) -> None:
    """A third node takes the tally (the least loaded); it leaves while the run goes on; the
    run starts again on the two nodes that remain and gives the inline outputs."""
    from conveyor.backends.ray_cluster import cluster_nodes

    graph = cv.Graph(GRAPH_TASKS)
    inline = cv.run(graph, backend="inline", collect=["Running"])
    spare = cluster.add_node(num_cpus=1)
    try:
        cluster.wait_for_nodes()
        plan = cv.plan_cluster(graph, cluster_nodes(ray_module()))
        assert len(plan.used) == 3, plan.describe()
        spare_id = plan.placement["Running"]
        assert spare_id not in {plan.placement["readings_a"], plan.placement["readings_b"]}
        result: list[Any] = []
        # The tally's 5th item holds its node for 30 s: the node leaves meanwhile.
        with inject(Fault("Running", item=5, mode="sleep", seconds=30.0)) as armed:
            worker = threading.Thread(
                target=lambda: result.append(
                    cv.run(graph, backend="ray", plan=plan, collect=["Running"])
                )
            )
            worker.start()
            deadline = time.monotonic() + 60
            while not fired(armed[0]) and time.monotonic() < deadline:
                time.sleep(0.1)
            cluster.remove_node(spare)
            spare = None
            worker.join(120)
        assert not worker.is_alive() and result, "the run did not finish"
        got = result[0]
        assert [r.pipeline for r in got.restarts] == [f"node {spare_id[:8]}"]
        assert "left the cluster" in got.restarts[0].reason
        assert len(got.cluster.used) == 2 and spare_id not in got.cluster.placement.values()
        assert tallies(got) == tallies(inline)
    finally:
        if spare is not None:
            cluster.remove_node(spare)
        # Ray killed the removed node's processes, the lost run's janitor with them: its
        # shared memory is what a host whose Ray node stopped keeps until `conveyor clean`.
        removed = sweep_orphans()
        assert len({owner_pid(n) for n in removed}) <= 1, removed


def test_conveyor_run_prints_the_cluster_plan_and_each_nodes_pipelines(
    cluster: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from conveyor.cli import main

    assert main(["run", "tests.integration.cluster_fixtures:graph", "--backend", "ray"]) == 0
    out = capsys.readouterr().out
    assert "cluster plan: 4 tasks on 2 node(s)" in out and "bridges between nodes: 2" in out
    assert "done: ray backend" in out
    assert out.count("/p0-cpu") == 2  # one pipeline per node, named after its node


def test_a_local_run_called_off_stops_and_releases_everything() -> None:
    """What the driver does to the other nodes' runs when one fails (no Ray needed)."""
    from conveyor.backends.local import run_local
    from tests.integration.cluster_fixtures import endless, keep

    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    try:
        with pytest.raises(cv.RunStopped):
            run_local(cv.Graph([endless, keep]), ["keep"], workers=2, stop=stop)
    finally:
        timer.cancel()
