"""A two-store graph for the simulated Ray cluster: each store's readings come from its own
node (``node="store-a"``/``"store-b"``), a join pairs them, a stateful task keeps a running
total; every task notes the node it ran on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import conveyor as cv

ITEMS = 60  # readings per store


def node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else ""


@dataclass
class Reading:
    index: int
    value: float
    node: str


class ReadingA(Reading):
    pass


class ReadingB(Reading):
    pass


@dataclass
class Pair:
    index: int
    value: float
    nodes: tuple[str, ...]


@dataclass
class Tally:
    index: int
    total: float
    nodes: tuple[str, ...]  # where the two readings, the pair and this tally ran


@cv.source(node="store-a")
def readings_a() -> Iterator[ReadingA]:
    here = node_id()
    for i in range(ITEMS):
        yield ReadingA(i, 0.5 * i, here)


@cv.source(node="store-b")
def readings_b() -> Iterator[ReadingB]:
    here = node_id()
    for i in range(ITEMS):
        yield ReadingB(i, 1.0 + i, here)


@cv.task(join_on="index", cost=4e-3)  # heavy enough that the tally goes to the other node
def pair(a: ReadingA, b: ReadingB) -> Pair:
    return Pair(a.index, a.value * b.value, (a.node, b.node, node_id()))


@cv.task
class Running:
    """A running total over both stores (state that must stay whole: one instance)."""

    def __init__(self) -> None:
        self.total = 0.0

    def __call__(self, p: Pair) -> Tally:
        self.total += p.value
        return Tally(p.index, self.total, (*p.nodes, node_id()))


GRAPH_TASKS = [readings_a, readings_b, pair, Running]
graph = cv.Graph(GRAPH_TASKS)  # for `conveyor run tests.integration.cluster_fixtures:graph`


@cv.source
def endless() -> Iterator[ReadingA]:
    i = 0
    while True:
        yield ReadingA(i, 0.0, "")
        i += 1


@cv.task
def keep(r: ReadingA) -> Pair:
    return Pair(r.index, r.value, ())
