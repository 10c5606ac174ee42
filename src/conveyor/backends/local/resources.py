"""A local run's shared objects, created before any pipeline starts and closed (unlinked)
together at its end, whatever happens: one doorbell per pipeline and one for the driver, one
ring per link between two processes, the sources' progress, the heartbeats, the split
numbering, the statistics table, the trace parts, the checkpoints and the frame store."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from conveyor.backends.local.worker import SharedNames, WorkerConfig
from conveyor.backends.scaffold import Monitoring, trace_output
from conveyor.graph import Graph
from conveyor.monitor.counters import Counters
from conveyor.monitor.trace import TraceOutput
from conveyor.plan import Plan
from conveyor.runtime.checkpoint import new_checkpoint_prefix, remove_checkpoints
from conveyor.runtime.context import LoopSettings
from conveyor.runtime.frames import create_frame_store, use_frame_store
from conveyor.runtime.heartbeat import Heartbeats
from conveyor.runtime.inlets import FanInInlet, Inlet, MergeInlet, RingInlet
from conveyor.runtime.links import PARENT, Link, plan_links
from conveyor.runtime.merge import Merger
from conveyor.runtime.numbering import SplitNumbers
from conveyor.runtime.progress import SourceProgress
from conveyor.spec import CameraSpec
from conveyor.transport.doorbell import Doorbell
from conveyor.transport.ring import Ring, RingReader, register_bell

RING_BYTES = 64 << 20  # per channel between pipelines: room for ~10 1080p frames in flight
COLLECT_BYTES = 16 << 20
CONTROL_BYTES = 64 << 10  # the driver's changes into a pipeline (a few hundred bytes each)
ADDED_PIPELINES = 256  # heartbeat slots for pipelines of sources added while a run goes on


@dataclass
class RunResources:
    """What the driver holds of a run's shared objects."""

    configs: list[WorkerConfig]  # one per pipeline
    readers: dict[str, Inlet]  # the outputs that come back to the driver, by task
    bell: Doorbell  # the driver's
    heartbeats: Heartbeats
    counters: Counters | None
    trace: TraceOutput | None
    shared: SharedNames  # the names pipelines attach to
    bells: list[str]  # each pipeline's doorbell


def create_resources(
    stack: contextlib.ExitStack,
    graph: Graph,
    plan: Plan,
    back: Sequence[str],
    cameras: Sequence[CameraSpec],
    settings: LoopSettings,
    stats: bool,
    monitor: Monitoring,
) -> RunResources:
    """Create the shared objects of a run of ``plan`` on ``stack`` (closed with it). ``back``:
    the tasks whose outputs come back to the driver."""
    store = create_frame_store(cameras)
    if store is not None:
        stack.callback(store.close)
    stack.callback(use_frame_store, None)
    pipelines = len(plan.pipelines)
    progress = closing(stack, SourceProgress.create(graph.sources()))
    slots = pipelines + ADDED_PIPELINES
    beats = closing(stack, Heartbeats.create(slots))
    counters = closing(stack, Counters.create(pipelines, len(graph.order))) if stats else None
    trace = trace_output(monitor, [p.name for p in plan.pipelines])
    if trace is not None:
        stack.callback(trace.close)
    checkpoints = new_checkpoint_prefix()
    stack.callback(remove_checkpoints, checkpoints)
    parent_bell = closing(stack, Doorbell.create())
    register_bell(parent_bell)
    bells = [closing(stack, Doorbell.create()) for _ in plan.pipelines]
    links = []
    for link in plan_links(plan, list(back)):
        if not link.local:
            dst_bell = parent_bell.name if link.dst == PARENT else bells[link.dst].name
            size = COLLECT_BYTES if link.dst == PARENT else RING_BYTES
            ring = Ring(size, consumer_bell=dst_bell, producer_bell=bells[link.src].name)
            closing(stack, ring)
            link = link.with_ring(ring.name)
        links.append(link)
    splitters = tuple(sorted({k.producer for k in links if k.replicas > 1}))
    numbers = closing(stack, SplitNumbers.create(list(splitters)))
    shared = SharedNames(
        progress.name,
        beats.name,
        numbers.name,
        checkpoints,
        frame_store=store.name if store is not None else None,
        counters=counters.name if counters is not None else None,
        trace=trace.prefix if trace is not None else None,
        heartbeat_slots=slots,
    )
    controls = [
        closing(stack, Ring(CONTROL_BYTES, 64, bells[p.index].name, parent_bell.name)).name
        for p in plan.pipelines
    ]
    configs = [
        WorkerConfig(
            p.index,
            graph,
            list(p.tasks),
            bells[p.index].name,
            [k for k in links if p.index in (k.src, k.dst)],
            shared,
            settings,
            pipelines=pipelines,
            splitters=splitters,
            gpu=p.device if p.resource == "gpu" else None,
            control=controls[p.index],
        )
        for p in plan.pipelines
    ]
    names = [b.name for b in bells]
    return RunResources(
        configs, _readers(links), parent_bell, beats, counters, trace, shared, names
    )


def _readers(links: list[Link]) -> dict[str, Inlet]:
    """The driver's inlets: a ring per collected task, or the merge of its replicas' rings."""
    rings: dict[str, list[RingReader]] = {}
    merged: set[str] = set()
    for link in links:
        if link.dst == PARENT:
            rings.setdefault(link.producer, []).append(RingReader(link.ring_name))
            if link.merged:
                merged.add(link.producer)
    return {
        name: MergeInlet(Merger(readers))
        if name in merged
        else RingInlet(readers[0])
        if len(readers) == 1
        else FanInInlet([RingInlet(r) for r in readers])
        for name, readers in rings.items()
    }


class _Closable(Protocol):
    def close(self) -> None: ...


_T = TypeVar("_T", bound=_Closable)


def closing(stack: contextlib.ExitStack, obj: _T) -> _T:
    """``obj``, closed (unlinked) with ``stack``."""
    stack.callback(obj.close)
    return obj
