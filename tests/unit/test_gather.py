"""Gathering: the pure decision, and a gathering task in the loop (cross-camera groups)."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import conveyor as cv
from conveyor.graph import Graph
from conveyor.runtime.context import LoopContext
from conveyor.runtime.gather import QUIET, Pending, oldest_group
from conveyor.runtime.loop import PipelineLoop


def test_a_group_is_ready_when_every_member_has_sent_or_moved_past_it() -> None:
    latest: dict = {}
    pending = [Pending(0, "a", 0.0), Pending(0, "b", 0.0)]
    # a and b sent group 0, but nothing has moved past it: c may still come.
    assert oldest_group(pending, latest, 0.0, 1.0, False) == (None, pytest.approx(1.0))
    latest["c"] = -1  # c was seen before (at key -1)
    pending.append(Pending(1, "a", 0.1))  # time moved on, but c has not sent 0 yet
    assert oldest_group(pending, latest, 0.1, 1.0, False) == (None, pytest.approx(0.9))
    pending.append(Pending(1, "c", 0.2))  # c skipped 0 and moved on: group 0 is complete
    assert oldest_group(pending, latest, 0.2, 1.0, False) == ([0, 1], None)


def test_a_group_goes_out_when_it_waited_max_wait_or_input_ended() -> None:
    latest = {"a": 0, "b": -1}
    pending = [Pending(0, "a", 0.0)]
    assert oldest_group(pending, latest, 0.5, 1.0, False)[0] is None
    assert oldest_group(pending, latest, 1.0, 1.0, False)[0] == [0]
    assert oldest_group(pending, latest, 0.5, 1.0, True)[0] == [0]


def test_a_member_waited_for_in_vain_leaves_the_population_until_it_sends_again() -> None:
    """Camera c stops (stalled, or removed from the run): group 1 waits max_wait for it, once;
    group 2 then goes out as soon as a and b have sent it. When c sends again it is back."""
    latest: dict = {"a": 0, "b": 0, "c": 0}
    pending = [Pending(1, "a", 0.0), Pending(1, "b", 0.0), Pending(2, "a", 0.1)]
    assert oldest_group(pending, latest, 0.5, 1.0, False)[0] is None  # c may still send 1
    assert oldest_group(pending, latest, 1.0, 1.0, False)[0] == [0, 1]  # waited enough
    assert "c" not in latest
    pending = [Pending(2, "a", 0.1), Pending(2, "b", 1.1), Pending(3, "a", 1.2)]
    assert oldest_group(pending, latest, 1.2, 1.0, False)[0] == [0, 1]  # no wait for c
    pending = [Pending(3, "a", 1.2), Pending(3, "c", 1.3), Pending(4, "c", 1.4)]
    assert oldest_group(pending, latest, 1.4, 1.0, False)[0] is None  # b has not sent 3
    assert latest["c"] == 4


def test_when_a_stream_is_removed_groups_stop_waiting_for_its_member() -> None:
    """Three cameras; c's source is removed (the gather is told: two streams now). Once c has
    been silent for QUIET seconds, group 5 goes out without it as soon as a and b sent it
    (not after max_wait), and c is let go. A camera merely behind is not taken for gone."""
    latest: dict = {"a": 4, "b": 4, "c": 4}
    heard = {"a": 0.0, "b": 0.0, "c": 0.0}
    pending = [Pending(5, "a", 0.0), Pending(5, "b", 0.0), Pending(6, "a", 0.1)]
    assert oldest_group(pending, latest, 0.1, 30.0, False, 3, heard)[0] is None
    # two streams now, but c was heard 0.1 s ago: maybe its last items are on their way
    got = oldest_group(pending, latest, 0.1, 30.0, False, 2, heard)
    assert got == (None, pytest.approx(QUIET - 0.1))
    assert oldest_group(pending, latest, QUIET, 30.0, False, 2, heard)[0] == [0, 1]
    assert "c" not in latest
    # b is behind but not silent: group 6 waits for it
    pending = [Pending(6, "a", 0.1), Pending(7, "a", 0.2), Pending(6, "c", QUIET)]
    latest = {"a": 5, "b": 5, "c": 5}
    heard = {"a": 0.2, "b": QUIET, "c": QUIET}
    assert oldest_group(pending, latest, QUIET + 0.1, 30.0, False, 2, heard)[0] is None


def test_below_sources_per_camera_a_group_waits_for_cameras_not_seen_yet() -> None:
    """Two camera sources in two processes: camera b's process started later. Group 0 has
    only a's message and a has moved on, which would make it complete; but two streams feed
    the gather, so it waits for the second member (up to max_wait), and then goes out whole."""
    pending = [Pending(0, "a", 0.0), Pending(1, "a", 0.1)]
    assert oldest_group(pending, {}, 0.2, 1.0, False)[0] == [0]  # one stream: a is everyone
    latest: dict = {}
    assert oldest_group(pending, latest, 0.2, 1.0, False, expected=2)[0] is None
    assert oldest_group(pending, latest, 1.0, 1.0, False, expected=2)[0] == [0]  # waited enough
    pending += [Pending(0, "b", 0.5), Pending(1, "b", 0.6)]
    assert oldest_group(pending, {}, 0.6, 1.0, False, expected=2)[0] == [0, 2]


def test_the_graph_counts_the_streams_above_a_task() -> None:
    from tests.unit.bind_fixtures import Count, per_camera, split_scale

    graph = Graph([*per_camera(3, 5), split_scale, Count.bind([])])
    assert sorted(graph.streams_above("Count")) == ["ramp[cam0]", "ramp[cam1]", "ramp[cam2]"]
    assert graph.streams_above("ramp[cam0]") == []


def test_window_buckets_float_timestamps() -> None:
    g = cv.Gather(by="ts", member="camera", window=0.1)
    assert (
        g.key_of(Shot("a", 3, 0.31)) == g.key_of(Shot("b", 3, 0.39)) != g.key_of(Shot("a", 4, 0.41))
    )


@dataclass
class Shot:
    camera: str
    index: int
    ts: float


@dataclass
class Instant:
    index: int
    cameras: tuple[str, ...]


@cv.source
def shots() -> Iterator[Shot]:
    """Three cameras; camera c drops every third frame, b starts late (index 2)."""
    for index in range(12):
        for camera in ("a", "b", "c"):
            if camera == "c" and index % 3 == 1:
                continue
            if camera == "b" and index < 2:
                continue
            yield Shot(camera, index, index / 10)


@cv.task(gather=cv.Gather(by="index", member="camera"), max_wait=60)
def instant(shots: list[Shot]) -> Instant:
    assert len({s.index for s in shots}) == 1
    return Instant(shots[0].index, tuple(sorted(s.camera for s in shots)))


def test_gathering_task_groups_each_instant_across_cameras() -> None:
    out: list[Instant] = []
    graph = Graph([shots, instant])
    PipelineLoop(LoopContext(graph, graph.order, collect={"instant": out.append})).run()
    assert [i.index for i in out] == list(range(12))
    expected = [
        tuple(
            c for c in ("a", "b", "c") if not (c == "c" and i % 3 == 1) and not (c == "b" and i < 2)
        )
        for i in range(12)
    ]
    assert [i.cameras for i in out] == expected


def test_gather_is_checked_when_the_task_is_declared() -> None:
    with pytest.raises(cv.ConfigurationError, match="not one of its fields"):

        @cv.task(gather=cv.Gather(by="frame", member="camera"))
        def bad(shots: list[Shot]) -> Instant: ...

    with pytest.raises(cv.ConfigurationError, match="list\\[T\\]"):

        @cv.task(gather=cv.Gather(by="index", member="camera"))
        def single(shot: Shot) -> Instant: ...

    with pytest.raises(cv.ConfigurationError, match="attribute"):
        cv.Gather(by="", member="camera")
