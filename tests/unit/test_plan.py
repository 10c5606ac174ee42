"""The planner: pure placement decisions, tested without processes."""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import conveyor as cv
from conveyor.graph import Graph
from conveyor.plan import make_plan
from tests.unit.graph_fixtures import Track, cameras, collect, detect


def graph() -> Graph:
    return Graph([cameras, detect, Track, collect])


def test_gpu_tasks_get_their_own_pipeline_when_there_is_a_gpu() -> None:
    plan = make_plan(graph(), workers=2, gpus=1)
    gpu = [p for p in plan.pipelines if p.resource == "gpu"]
    assert len(gpu) == 1 and gpu[0].tasks == ("detect",)
    assert all("detect" not in p.tasks for p in plan.pipelines if p.resource == "cpu")


def test_without_a_gpu_gpu_tasks_run_on_the_cpu_and_the_plan_says_so() -> None:
    plan = make_plan(graph(), workers=2, gpus=0)
    assert all(p.resource == "cpu" for p in plan.pipelines)
    assert "no GPU: runs on the CPU" in plan.reasons["detect"]
    assert "no GPU" in plan.describe()


def test_costs_come_from_measurements_then_hints_then_a_default() -> None:
    plan = make_plan(graph(), workers=1, costs={"Track": 0.02})
    assert plan.costs["Track"] == 0.02 and plan.reasons["Track"].startswith("measured")
    assert plan.costs["detect"] == 0.004 and plan.reasons["detect"].startswith("cost hint")
    assert plan.reasons["cameras"].startswith("no measurement")


def test_min_max_balance_on_two_workers() -> None:
    costs = {"cameras": 0.003, "detect": 0.004, "Track": 0.002, "collect": 0.001}
    plan = make_plan(graph(), workers=2, costs=costs)
    loads = sorted(round(p.load, 6) for p in plan.pipelines)
    assert loads == [0.005, 0.005]  # the optimum: {detect, collect} and {cameras, Track}


@dataclass
class Item:
    i: int


@dataclass
class Heavy:
    i: int


@cv.source
def numbers() -> Iterator[Item]:
    yield Item(0)


@cv.task(replicas="auto", cost=0.030)
def heavy(item: Item) -> Heavy:
    return Heavy(item.i)


@cv.task(cost=0.001)
def sink(h: Heavy) -> None: ...


def test_auto_replicas_split_a_task_that_would_be_the_bottleneck_alone() -> None:
    plan = make_plan(Graph([numbers, heavy, sink]), workers=2)
    assert sorted(plan.placement()["heavy"]) == [0, 1]
    assert "replicas" in plan.reasons["heavy"]
    assert plan.bottleneck.load < 0.030
    assert any("heavy" in str(e) for e in plan.cross_edges())


def test_describe_and_dot_name_every_task() -> None:
    plan = make_plan(graph(), workers=2, gpus=1)
    text, dot = plan.describe(), plan.to_dot()
    for name in ("cameras", "detect", "Track", "collect"):
        assert name in text and f'"{name}"' in dot
    assert dot.startswith("digraph") and "cluster_0" in dot


def test_bad_arguments() -> None:
    with pytest.raises(cv.ConfigurationError, match="workers"):
        make_plan(graph(), workers=0)
    with pytest.raises(cv.ConfigurationError, match="not in the graph"):
        make_plan(graph(), costs={"nope": 1.0})


@settings(max_examples=60, deadline=None)
@given(
    costs=st.lists(st.floats(1e-4, 0.05), min_size=4, max_size=4),
    workers=st.integers(1, 4),
)
def test_lpt_is_within_four_thirds_of_the_lower_bound(costs: list[float], workers: int) -> None:
    names = ["cameras", "detect", "Track", "collect"]
    plan = make_plan(graph(), workers=workers, costs=dict(zip(names, costs, strict=True)))
    placed = [u.task for p in plan.pipelines for u in p.units]
    assert sorted(set(placed)) == sorted(names)  # every task placed (replicas: several times)
    for p in plan.pipelines:  # a pipeline runs a task at most once
        assert len({u.task for u in p.units}) == len(p.units)
    best = min(  # the true optimum, by brute force over every assignment
        max(sum(c for c, b in zip(costs, assign, strict=True) if b == k) for k in range(workers))
        for assign in itertools.product(range(workers), repeat=len(costs))
    )
    # LPT is within 4/3 of the optimum without replicas (replicas only lower the load); the
    # neighbour tie-break (within NEAR) loosens that a little.
    assert plan.bottleneck.load <= 1.5 * best + 1e-12


@dataclass
class Tick:
    i: int


@cv.source
def ticks() -> Iterator[Tick]:
    i = 0
    while True:  # endless: the warm-up must stop it
        yield Tick(i)
        i += 1


@cv.task(replicas=1)
def busy(t: Tick) -> Heavy:
    import time

    time.sleep(0.004)
    return Heavy(t.i)


@cv.task
def cheap(h: Heavy) -> None: ...


def test_measured_costs_drive_the_plan() -> None:
    g = Graph([ticks, busy, cheap])
    costs = cv.measure_costs(g, items=10)
    assert set(costs) == {"ticks", "busy", "cheap"}
    assert 0.003 < costs["busy"] < 0.05 and costs["cheap"] < costs["busy"]
    plan = make_plan(g, workers=2, costs=costs)
    assert plan.reasons["busy"].startswith("measured")
    assert plan.pipeline_of("busy") != plan.pipeline_of("cheap")  # the heavy one alone


def test_gpus_are_detected_from_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.plan import detect_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert detect_gpus() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect_gpus() == 0


def test_auto_replicas_are_kept_only_when_they_lower_the_bottleneck_clearly() -> None:
    g = Graph([numbers, heavy, sink])
    plan = make_plan(g, workers=2, costs={"numbers": 0.010, "heavy": 0.012, "sink": 0.001})
    assert len(plan.replicas_of("heavy")) == 1
    assert "not split" in plan.reasons["heavy"]
    wide = make_plan(g, workers=8, costs={"numbers": 0.002, "heavy": 0.030, "sink": 0.001})
    assert len(wide.replicas_of("heavy")) > 2 and wide.bottleneck.load < 0.010


@dataclass
class Mid:
    i: int


@cv.task(cost=0.002)
def pre(item: Item) -> Mid:
    return Mid(item.i)


@cv.task(cost=0.003)
def model(m: Mid) -> Heavy:
    return Heavy(m.i)


def test_when_neighbours_both_want_replicas_the_heavier_gets_them() -> None:
    plan = make_plan(Graph([numbers, pre, model, sink]), workers=16, costs={"numbers": 0.0005})
    assert len(plan.replicas_of("model")) > 1 and len(plan.replicas_of("pre")) == 1
    assert "its neighbour 'model' is" in plan.reasons["pre"]


def _measured(costs: dict[str, float], items: int = 1000) -> cv.Stats:
    """A run's statistics in which each task took ``costs[task]`` seconds per item."""
    tasks = {
        n: cv.TaskStats(n, items, items, items, 0, c * items, 1.0, c, c, c, 0, 64, 1)
        for n, c in costs.items()
    }
    return cv.Stats(elapsed=10.0, tasks=tasks, pipelines=(), sources=("cameras",))


def test_replan_places_tasks_again_from_measured_costs() -> None:
    # Hints say detect is the heavy task; the run measured Track as far heavier.
    plan = make_plan(graph(), workers=3, gpus=0)
    stats = _measured({"cameras": 0.0002, "detect": 0.001, "Track": 0.03, "collect": 0.0005})
    again = plan.replan(stats)
    assert again.costs["Track"] == pytest.approx(0.03)
    assert again.reasons["Track"].startswith("measured")
    assert again.workers == 3 and again.gpus == 0
    before = plan.with_costs(
        stats_costs := {n: t.busy / t.items_in for n, t in stats.tasks.items()}
    )
    assert before.pipelines[0].units[0].task == plan.pipelines[0].units[0].task  # same placement
    assert before.costs == pytest.approx({**plan.costs, **stats_costs})
    # Track is keyed, so it can be split into replicas: the new bottleneck is lighter.
    assert again.bottleneck.load < before.bottleneck.load * 0.7
    assert len(again.replicas_of("Track")) > 1


def test_replan_keeps_the_hint_of_a_task_that_processed_nothing() -> None:
    plan = make_plan(graph(), workers=2, gpus=0)
    again = plan.replan(_measured({"cameras": 0.001}))
    assert again.reasons["detect"].startswith("cost hint") and again.costs["detect"] == 0.004


def test_a_source_bound_per_camera_weighs_its_share_of_the_items() -> None:
    """8 cameras of 1 ms per frame each, and a 4 ms task that takes every camera's frames:
    per frame of the graph a camera is 1/8 ms (counted whole, the cameras alone would have
    looked like 8 ms of a 12 ms frame)."""
    from tests.unit.bind_fixtures import per_camera, scale

    graph = cv.Graph([*per_camera(8, 3), scale.bind(factor=1.0)])
    costs = {f"ramp[cam{c}]": 0.001 for c in range(8)} | {"scale": 0.004}
    plan = make_plan(graph, workers=2, costs=costs)
    assert plan.costs["ramp[cam0]"] == 0.001  # the measured cost, as given
    assert "12% of the items" in plan.reasons["ramp[cam0]"]
    # 5 ms per frame in all: scale in two replicas, four cameras beside each
    assert sorted(round(p.load, 6) for p in plan.pipelines) == [0.0025, 0.0025]
    assert plan.with_costs(costs).bottleneck.load == pytest.approx(0.0025)
