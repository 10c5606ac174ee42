"""One source per camera: several bindings of one source merge into the tasks that take their
type; a replicated consumer is partitioned by stream (each replica takes whole cameras)."""

from __future__ import annotations

import pytest

import conveyor as cv
from conveyor.runtime.links import plan_links
from tests.unit.bind_fixtures import Count, Sensors, per_camera, ramp, scale, split_scale


def rows(out: list) -> list:
    return sorted((s.sensor, s.index, s.value, s.seen) for s in out)


def test_bindings_of_one_source_merge_into_their_consumer() -> None:
    graph = cv.Graph([*per_camera(3, 5), scale.bind(factor=1.0), Count.bind([])])
    assert graph.streams_into("scale") == ["ramp[cam0]", "ramp[cam1]", "ramp[cam2]"]
    assert graph.streams_into("Count") == []
    out = cv.run(graph, backend="inline", collect=["Count"]).outputs["Count"]
    # Every camera's items, once each and in order: a keyed instance saw index items before.
    assert rows(out) == [(f"cam{c}", i, float(i), i) for c in range(3) for i in range(5)]


def test_two_different_sources_of_one_type_still_need_wire() -> None:
    with pytest.raises(cv.ConfigurationError, match="say which with"):
        cv.Graph([ramp.bind(count=1), Sensors.bind(["a"], 1), scale.bind(factor=1.0)])


def test_a_replicated_consumer_takes_whole_streams() -> None:
    graph = cv.Graph([*per_camera(5, 3), split_scale, Count.bind([])])
    plan = cv.make_plan(graph, workers=2, costs={"split_scale": 0.01})
    assert len(plan.replicas_of("split_scale")) == 2
    links = plan_links(plan)
    into = [k for k in links if k.consumer == "split_scale"]
    # One link per camera, each to one replica (an even share each); no numbering, no merge.
    assert sorted(k.producer for k in into) == [f"ramp[cam{i}]" for i in range(5)]
    assert sorted(sum(k.replica == j for k in into) for j in (0, 1)) == [2, 3]
    # a camera's frames stay in the process that made them where the shares allow
    assert sum(k.local for k in into) == 3  # all 5 decode in one pipeline: its share, 3
    assert all(k.replicas == 1 and not k.merged for k in into)
    out_of = [k for k in links if k.producer == "split_scale"]
    assert out_of and not any(k.merged for k in out_of)


def test_replicas_are_capped_by_the_cameras() -> None:
    graph = cv.Graph([*per_camera(2, 3), scale.bind(factor=1.0)])
    plan = cv.make_plan(graph, workers=4, costs={"scale": 1.0})
    assert len(plan.replicas_of("scale")) == 2


def test_a_camera_waiting_for_frames_holds_no_other_camera_up() -> None:
    """Each source iterates in its own thread: the fast camera's items go through while the
    slow one waits between frames (iterated in the loop, the slow camera, first in the
    graph, would have held the fast one up for its whole second)."""
    from tests.unit.bind_fixtures import ticking

    graph = cv.Graph(
        [
            cv.bind(ticking, sensor="fast", count=20, pause=0.0).named("fast"),
            cv.bind(ticking, sensor="slow", count=5, pause=0.2).named("slow"),
            scale.bind(factor=1.0),
        ]
    )
    assert graph.order.index("slow") < graph.order.index("fast")  # the slow one goes first
    out = cv.run(graph, backend="inline", collect=["scale"]).outputs["scale"]
    order = [(v.sensor, v.index) for v in out]
    assert sorted(order) == sorted(
        [("slow", i) for i in range(5)] + [("fast", i) for i in range(20)]
    )
    assert order.index(("fast", 19)) < order.index(("slow", 2)), order
    assert [i for s, i in order if s == "slow"] == list(range(5))  # each camera in order


def test_sources_that_never_wait_are_read_in_the_loop_in_turn() -> None:
    """``waits=False``: no thread; the loop takes one item of each camera in turn (the
    first camera in the graph does not run to its end before the second starts)."""
    from tests.unit.bind_fixtures import busy_ramp

    graph = cv.Graph(
        [cv.bind(busy_ramp, count=6, sensor=s).named(s) for s in ("a", "b")]
        + [scale.bind(factor=1.0)]
    )
    out = cv.run(graph, backend="inline", collect=["scale"]).outputs["scale"]
    order = [v.sensor for v in out]
    assert sorted(order) == ["a"] * 6 + ["b"] * 6
    assert order.index("b") < order.index("a") + 3, order  # b began while a had items left
    assert max(len(run) for run in "".join(order).replace("ab", "a b").split()) <= 2, order


def test_replicas_partitioned_by_camera_get_an_even_share_of_the_cameras_weight() -> None:
    """Four cameras whose frames cost twice as much (weight 2) and four light ones: each of
    the two replicas takes work 6, not the four heavy ones on one side (8 against 4)."""
    heavy = [
        cv.bind(ramp, count=3, sensor=f"h{i}").named(f"ramp[h{i}]").with_options(weight=2.0)
        for i in range(4)
    ]
    light = [cv.bind(ramp, count=3, sensor=f"l{i}").named(f"ramp[l{i}]") for i in range(4)]
    graph = cv.Graph([*light, *heavy, split_scale, Count.bind([])])
    plan = cv.make_plan(graph, workers=2, costs={"split_scale": 0.01})
    into = [k for k in plan_links(plan) if k.consumer == "split_scale"]
    weights = {k.producer: graph.tasks[k.producer].weight for k in into}
    shares = sorted(sum(weights[k.producer] for k in into if k.replica == j) for j in (0, 1))
    assert shares == [6.0, 6.0]
    with pytest.raises(cv.ConfigurationError, match="weight must be a positive number"):
        ramp.bind(count=1).with_options(weight=0)
