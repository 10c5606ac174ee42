"""Links: every channel a plan needs, by pipeline. Pure functions over the plan, no processes.

A graph edge ``producer -> consumer.param`` becomes one link per pair of replicas placed for
it: a *local* link when both ends run in one pipeline (plain Python objects, no copy), a *ring*
link otherwise (a shared-memory ring, named by the backend). Replicas change what travels:

- into a replicated consumer (``replicas > 1``) the producer numbers its outputs (``seq``) and
  sends each to one replica: ``seq % replicas``, or by a hash of the consumer's key attribute
  for a keyed task, so every key stays with one replica and keeps its order;
- out of a replicated producer (``merged``) each message carries its input's ``seq`` (a
  replica that produces nothing sends a skip marker), and the consumer merges the replicas'
  streams back into seq order.

A replicated task takes one input and feeds no other replicated task directly (the planner
and the task decorator refuse the rest), so one merge restores the order of every stream.

A replicated task fed by *several sources* (one per camera, ``Graph.streams_into``) is
partitioned by stream instead: each source feeds one replica, whole (``stream_replicas``: the
one in its own pipeline where the placement allows), so each
replica sees each of its cameras in order, and its outputs need no merge (every camera's items
leave one replica, in order). A source that restarts touches only its own stream.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Any

from conveyor.graph import Graph
from conveyor.plan import Plan

PARENT = -1  # the pipeline index of the parent process (it collects outputs)


@dataclass(frozen=True)
class Link:
    producer: str
    consumer: str | None  # None: the producer's outputs are collected by the parent
    param: str
    src: int  # pipeline of this producer replica
    dst: int  # pipeline of this consumer replica, or PARENT
    replica: int = 0  # which replica of the consumer this link feeds
    replicas: int = 1  # how many replicas the consumer has
    merged: bool = False  # the producer is replicated: messages carry seq, the consumer merges
    key: str | None = None  # the consumer's key attribute (routing of a keyed replicated task)
    ring: str | None = None  # the shared-memory ring's name (assigned by the backend)

    @property
    def local(self) -> bool:
        return self.src == self.dst

    @property
    def ring_name(self) -> str:
        if self.ring is None:
            raise AssertionError(f"link {self} is local: it has no ring")
        return self.ring

    def with_ring(self, name: str) -> Link:
        return replace(self, ring=name)


def plan_links(plan: Plan, collect: list[str] | None = None) -> list[Link]:
    """Every link of ``plan``, plus links to the parent for each task named in ``collect``."""
    graph = plan.graph
    links = []
    partitions: dict[str, dict[str, int]] = {}  # consumer -> its sources' replicas
    for e in graph.edges:
        producers = plan.replicas_of(e.producer)
        consumers = plan.replicas_of(e.consumer)
        streams = graph.streams_into(e.consumer) if len(consumers) > 1 else []
        if streams:  # partitioned by stream: this source feeds one replica, whole
            if e.consumer not in partitions:
                partitions[e.consumer] = stream_replicas(plan, e.consumer)
            j = partitions[e.consumer][e.producer]
            links.append(Link(e.producer, e.consumer, e.param, producers[0], consumers[j], j))
            continue
        key = graph.tasks[e.consumer].key
        for src in producers:
            for j, dst in enumerate(consumers):
                links.append(
                    Link(
                        e.producer,
                        e.consumer,
                        e.param,
                        src,
                        dst,
                        replica=j,
                        replicas=len(consumers),
                        merged=merges(plan, e.producer),
                        key=key if len(consumers) > 1 else None,
                    )
                )
    for name in collect or []:
        producers = plan.replicas_of(name)
        links += [Link(name, None, "", src, PARENT, merged=merges(plan, name)) for src in producers]
    return links


def stream_replicas(plan: Plan, consumer: str) -> dict[str, int]:
    """Which replica of ``consumer`` takes each source of its merge: an even share of the
    sources' ``weight`` each (a camera whose frames cost twice as much counts twice), the one
    in the source's own pipeline while it has room, so that a camera's frames stay in the
    process that decoded them where the placement allows. Heaviest sources first. A function
    of the plan alone: every process computes the same."""
    streams = plan.graph.streams_into(consumer)
    homes = plan.replicas_of(consumer)
    weight = {s: float(plan.graph.tasks[s].weight) for s in streams}
    share = sum(weight.values()) / len(homes)
    load = [0.0] * len(homes)
    chosen: dict[str, int] = {}
    order = sorted(streams, key=lambda s: -weight[s])  # stable: graph order among equals
    for source in order:
        here = plan.replicas_of(source)[0]
        # home while the camera's middle still fits in the share (5 equal cameras on two
        # replicas: 3 and 2, as ceil(5 / 2) did before weights)
        if here in homes and load[homes.index(here)] + weight[source] / 2 <= share + 1e-9:
            chosen[source] = homes.index(here)
            load[chosen[source]] += weight[source]
    for source in order:
        if source not in chosen:
            chosen[source] = min(range(len(homes)), key=lambda j: (load[j], j))
            load[chosen[source]] += weight[source]
    return {s: chosen[s] for s in streams}


def merges(plan: Plan, task: str) -> bool:
    """Whether ``task``'s outputs are merged back into order: it is replicated, and not
    partitioned by stream (whose replicas each keep their whole streams in order)."""
    return len(plan.replicas_of(task)) > 1 and not plan.graph.streams_into(task)


def inline_links(graph: Graph) -> list[Link]:
    """Every edge as a local link in pipeline 0 (the inline backend: no replicas)."""
    return [Link(e.producer, e.consumer, e.param, 0, 0) for e in graph.edges]


def route(value: Any, seq: int, key: str | None, replicas: int) -> int:
    """The replica that takes ``value``: by key (stable across processes), else round-robin."""
    if key is None:
        return seq % replicas
    # crc32 of the repr, not hash(): str hashes differ between processes (PYTHONHASHSEED).
    return zlib.crc32(repr(getattr(value, key)).encode()) % replicas
