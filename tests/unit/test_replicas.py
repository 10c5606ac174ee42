"""Replicas without processes: the planner's rules, the links it implies, the ordered merge."""

from collections.abc import Iterator
from dataclasses import dataclass
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import conveyor as cv
from conveyor.graph import Graph
from conveyor.plan import make_plan
from conveyor.runtime.links import PARENT, plan_links, route
from conveyor.runtime.merge import Merger
from conveyor.transport import EndOfChannel
from conveyor.transport.ring import Ring


@dataclass
class A:
    camera: str
    i: int


@dataclass
class B:
    camera: str
    i: int


@dataclass
class C:
    i: int


@cv.source
def src() -> Iterator[A]:
    yield A("c", 0)


@cv.task(replicas=2, cost=0.01)
def twice(a: A) -> B:
    return B(a.camera, a.i)


@cv.task(replicas="auto", cost=0.05)
def heavy_b(b: B) -> C:
    return C(b.i)


@cv.task(replicas=2, cost=0.01)
def also_twice(b: B) -> C:
    return C(b.i)


def test_replicas_run_in_distinct_pipelines_and_are_clamped_to_the_workers() -> None:
    plan = make_plan(Graph([src, twice]), workers=2)
    assert sorted(plan.replicas_of("twice")) == [0, 1]
    one = make_plan(Graph([src, twice]), workers=1)
    assert one.replicas_of("twice") == [0]
    assert "at most one per pipeline" in one.reasons["twice"]


def test_a_replicated_task_cannot_feed_another_directly() -> None:
    with pytest.raises(cv.ConfigurationError, match="cannot feed another"):
        make_plan(Graph([src, twice, also_twice]), workers=2)
    # With "auto" the planner gives up the second task's replicas instead, and says why.
    plan = make_plan(Graph([src, twice, heavy_b]), workers=2)
    assert len(plan.replicas_of("heavy_b")) == 1
    assert "its neighbour 'twice' is" in plan.reasons["heavy_b"]


def test_the_decorator_refuses_replicas_that_cannot_work() -> None:
    with pytest.raises(cv.ConfigurationError, match="a source runs once"):
        cv.source(replicas=2)(src)
    with pytest.raises(cv.ConfigurationError, match="without a key"):

        @cv.task(replicas=2)
        class Counter:
            def __call__(self, a: A) -> B: ...

    with pytest.raises(cv.ConfigurationError, match="several inputs"):

        @cv.task(replicas=2)
        def join(a: A, b: B) -> B: ...


def test_links_route_into_replicas_and_merge_out_of_them() -> None:
    plan = make_plan(Graph([src, twice]), workers=2)
    links = plan_links(plan, collect=["twice"])
    into = [k for k in links if k.consumer == "twice"]
    assert sorted(k.replica for k in into) == [0, 1] and all(k.replicas == 2 for k in into)
    assert sum(k.local for k in into) == 1  # the replica beside the source reads no ring
    out = [k for k in links if k.dst == PARENT]
    assert len(out) == 2 and all(k.merged for k in out)


def test_routing_is_round_robin_or_stable_by_key() -> None:
    assert [route(A("x", 0), s, None, 3) for s in range(6)] == [0, 1, 2, 0, 1, 2]
    by_key = {route(A(cam, 0), s, "camera", 4) for s in range(50) for cam in ["c7"]}
    assert len(by_key) == 1  # one camera always goes to one replica


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(0, 2), min_size=1, max_size=40),
    st.sets(st.integers(0, 39)),
    st.randoms(use_true_random=False),
)
def test_merge_restores_seq_order(owner: list[int], skipped: set[int], rnd: Random) -> None:
    """Replica 0 pushes locally, replicas 1 and 2 write rings; their progress interleaves at
    random, and the merge still hands out every seq once, in order, skip markers included."""
    streams = [[s for s, o in enumerate(owner) if o == r] for r in range(3)]
    with Ring(capacity=64 * 1024) as r1, Ring(capacity=64 * 1024) as r2:
        writers = {1: r1.writer(), 2: r2.writer()}
        merger = Merger([r1.reader(), r2.reader()], local_inlets=1)
        out: list = []

        def drain() -> None:
            while (got := merger.try_read()) is not None:
                (_origin, _seq, value), token = got
                if token is not None:
                    token.drop()  # commits a ring's message
                out.append(value)

        live = [r for r in range(3) if streams[r]]
        while live:
            r = rnd.choice(live)
            s = streams[r].pop(0)
            value = None if s in skipped else s
            if r == 0:
                merger.push((s + 100, s, value), None)
            else:
                writers[r].write((s + 100, s, value))
            if not streams[r]:
                live.remove(r)
            if rnd.random() < 0.5:
                drain()
        merger.close_local()
        for w in writers.values():
            w.close()
        with pytest.raises(EndOfChannel):
            for _ in range(len(owner) + 2):
                drain()
                merger.try_read()
        for reader in merger.readers:
            reader.close()
    assert out == [None if s in skipped else s for s in range(len(owner))]
