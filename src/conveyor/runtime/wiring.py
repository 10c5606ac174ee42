"""Building one pipeline's tasks from the plan's links: each task's inputs (by kind), the
inlets that fill them from other processes, and its outlets in the order outputs go out
(rings, the collect callback, merges, replicated consumers, local queues)."""

from __future__ import annotations

from dataclasses import dataclass, field

from conveyor._errors import EndOfChannel
from conveyor.runtime.context import LoopContext
from conveyor.runtime.inlets import Inlet, MergeInlet, RingInlet
from conveyor.runtime.inputs import (
    GATHER_ROOM,
    BatchInputs,
    GatherInputs,
    Inputs,
    JoinInputs,
    ZipInputs,
)
from conveyor.runtime.instrument import TaskInfo
from conveyor.runtime.lease import Entry
from conveyor.runtime.links import Link, inline_links
from conveyor.runtime.merge import Merger
from conveyor.runtime.outputs import (
    CallbackOutlet,
    MergerOutlet,
    Outlet,
    QueueOutlet,
    ReplicaRouter,
    RingOutlet,
    SplitCounter,
)
from conveyor.runtime.task_run import TaskRun
from conveyor.task import TaskSpec
from conveyor.transport.ring import RingReader, RingWriter


@dataclass
class Feed:
    """An inlet and the input queue it fills."""

    inlet: Inlet
    inputs: Inputs
    param: str

    def pull(self) -> bool:
        """Move what arrived into the input queue while it fits; False once the inlet ended."""
        queue = self.inputs.queues[self.param]
        while len(queue) < self.inputs.capacity:
            try:
                entry = self.inlet.read()
            except EndOfChannel:
                self.inputs.open[self.param] -= 1
                return False
            if entry is None:
                break
            queue.append(entry)
        return True


@dataclass
class _Outs:
    """A task's outlets by kind while wiring (they go out in this order, collect second)."""

    rings: list[Outlet] = field(default_factory=list)
    merges: list[Outlet] = field(default_factory=list)
    routers: dict[tuple[str | None, str], ReplicaRouter] = field(default_factory=dict)
    queues: list[Outlet] = field(default_factory=list)


def build_tasks(ctx: LoopContext) -> dict[str, TaskRun]:
    """This pipeline's tasks, in the graph's order, with empty inputs and no outlets."""
    mine = set(ctx.tasks)
    settings = ctx.settings
    runs = {}
    for order, name in enumerate(ctx.graph.order):
        if name not in mine:
            continue
        spec = ctx.graph.tasks[name]
        timeout = spec.timeout
        if timeout is None and spec.kind != "source":  # a source may wait on a camera
            timeout = settings.stall_timeout
        runs[name] = TaskRun(spec, TaskInfo(name, order, timeout), _inputs(spec, ctx))
    return runs


def _inputs(spec: TaskSpec, ctx: LoopContext) -> Inputs:
    params = [p for p, _ in spec.inputs]
    size = ctx.settings.queue_size
    if spec.gather is not None:
        # A gathering task holds whole groups (one message per camera): room for several.
        expected = dict(ctx.settings.streams).get(
            spec.name, len(ctx.graph.streams_above(spec.name))
        )
        return GatherInputs(
            spec.name, params, size * GATHER_ROOM, spec.gather, spec.max_wait, expected=expected
        )
    if spec.batched:
        suspects = ctx.settings.suspects

        def suspect(entry: Entry) -> bool:
            return bool(suspects) and (spec.name, entry.origin) in suspects

        return BatchInputs(spec.name, params, size, spec.batch, spec.max_wait, suspect)
    if spec.join_on:
        return JoinInputs(spec.name, params, size, spec.join_on)
    return ZipInputs(spec.name, params, size)


def attach_feed(runs: dict[str, TaskRun], link: Link) -> Feed:
    """A new input of this pipeline from another process while it runs (an added camera's
    ring into ``link.consumer``): one more open producer of that parameter, and its feed."""
    assert link.consumer is not None and not link.local and not link.merged
    inputs = runs[link.consumer].inputs
    inputs.open[link.param] += 1
    return Feed(RingInlet(RingReader(link.ring_name)), inputs, link.param)


def wire(ctx: LoopContext, runs: dict[str, TaskRun]) -> list[Feed]:
    """Open this pipeline's ends of the links: set each task's outlets; return the feeds."""
    wiring = _Wiring(ctx, runs)
    for link in inline_links(ctx.graph) if ctx.links is None else ctx.links:
        if link.consumer is not None and link.dst == ctx.index:  # an input of this pipeline
            wiring.add_input(link, link.consumer)
        if link.src == ctx.index:
            wiring.add_outlet(link)
    for name, t in runs.items():
        o = wiring.outs[name]
        collect = ctx.collect.get(name)
        t.outlets = [
            *o.rings,
            *([CallbackOutlet(collect)] if collect is not None else []),
            *o.merges,
            *o.routers.values(),
            *o.queues,
        ]
    return wiring.feeds


class _Wiring:
    def __init__(self, ctx: LoopContext, runs: dict[str, TaskRun]) -> None:
        self.ctx, self.runs = ctx, runs
        self.feeds: list[Feed] = []
        self.outs = {name: _Outs() for name in runs}
        self.mergers: dict[tuple[str, str], Merger] = {}
        self.counters: dict[str, SplitCounter] = {}

    def add_input(self, link: Link, consumer: str) -> None:
        inputs = self.runs[consumer].inputs
        if link.merged:
            merger = self.merger_for(consumer, link.param)
            if link.local:
                merger.add_local()
            else:
                merger.add_reader(RingReader(link.ring_name))
            return
        inputs.open[link.param] += 1
        if not link.local:
            self.feeds.append(Feed(RingInlet(RingReader(link.ring_name)), inputs, link.param))

    def merger_for(self, task: str, param: str) -> Merger:
        """The merge of a replicated producer's outputs into ``task``'s ``param``."""
        merger = self.mergers.get((task, param))
        if merger is None:
            merger = self.mergers[(task, param)] = Merger([])
            inputs = self.runs[task].inputs
            inputs.open[param] += 1
            self.feeds.append(Feed(MergeInlet(merger), inputs, param))
        return merger

    def counter_for(self, task: str) -> SplitCounter:
        """The numbering of ``task``'s outputs into its replicated consumers (one per task)."""
        if task not in self.counters:
            numbers = self.ctx.split_numbers
            self.counters[task] = SplitCounter(numbers.numbering(task) if numbers else None)
        return self.counters[task]

    def add_outlet(self, link: Link) -> None:
        """The producer's end of ``link``."""
        outs = self.outs[link.producer]
        split = link.merged or link.replicas > 1  # its messages carry their place in a split
        outlet: Outlet
        if not link.local:
            writer = RingWriter(link.ring_name, wait_for_consumer=self.ctx.supervised)
            outlet = RingOutlet(writer, carries_seq=split)
        else:
            assert link.consumer is not None  # the parent's links are never local
            if link.merged:
                merger = self.merger_for(link.consumer, link.param)
                outlet = MergerOutlet(merger, self.ctx.settings.queue_size)
            else:
                inputs = self.runs[link.consumer].inputs
                outlet = QueueOutlet(inputs, link.param, carries_seq=split)
        if link.merged:
            outs.merges.append(outlet)
        elif link.replicas > 1:
            where = (link.consumer, link.param)
            router = outs.routers.get(where)
            if router is None:
                counter = self.counter_for(link.producer)
                router = outs.routers[where] = ReplicaRouter(link.key, link.replicas, counter)
            router.replicas[link.replica] = outlet
        elif link.local:
            outs.queues.append(outlet)
        else:
            outs.rings.append(outlet)
