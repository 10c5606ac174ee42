"""The loop inside one pipeline: pull inputs, choose a task by policy, run it, pass results on.

The same loop runs the inline backend (every task in this process, no rings) and each process
of the local backend (its share of the tasks; rings to and from the other pipelines), so both
backends have the same semantics by construction.

The loop is the scheduler over parts that each do one job: a task's inputs (``inputs``: zip,
batch, join, gather), its outlets (``outputs``: rings, local queues, merges, replicas), the
inlets from other processes (``inlets``), calling the code (``execute``), driving sources
(``source_run``), checkpoints (``checkpoint.Saver``), lease accounting (``lease``) and one
hook for whatever watches it (``instrument``: statistics, trace, heartbeats, faults). It is
built from one ``LoopContext``.
"""

from __future__ import annotations

import threading
import time

from conveyor._errors import TaskFailed
from conveyor.runtime.context import LoopContext
from conveyor.runtime.control import Attach, Change, ControlInlet, EndSource, Expect
from conveyor.runtime.execute import Executor, check_may_skip
from conveyor.runtime.frames import on_frame_pressure
from conveyor.runtime.inputs import GatherInputs
from conveyor.runtime.instrument import Instruments
from conveyor.runtime.lease import DROPPED, Unit
from conveyor.runtime.policy import choose
from conveyor.runtime.source_run import SourceRun
from conveyor.runtime.task_run import TaskRun
from conveyor.runtime.wiring import attach_feed, build_tasks, wire
from conveyor.spec import DeadLetter
from conveyor.transport.ring import RingWriter

IDLE_WAIT = 1.0  # seconds a loop with a doorbell sleeps at most when nothing is due


class PipelineLoop:
    """Runs the tasks placed in one pipeline until every one has finished."""

    def __init__(self, ctx: LoopContext) -> None:
        self.ctx = ctx
        self.instruments = Instruments(ctx.instruments)
        self.dead_letters: list[DeadLetter] = []
        self.executor = Executor(self.instruments, self._dead_letter)
        self.tasks = build_tasks(ctx)
        self.feeds = wire(ctx, self.tasks)
        self.came = threading.Event()  # a source's item came (the loop has no doorbell)
        self.awaited: list[SourceRun] = []  # sources whose next item the sleeping loop awaits
        mine = [t for t in self.tasks.values() if t.spec.kind == "source"]
        limit = ctx.settings.max_source_items
        threaded = len(mine) > 1 and ctx.settings.source_threads
        self.sources = {
            t.name: SourceRun(
                t, ctx.progress, limit, self._wake, threaded, ctx.graph.merged_with(t.name)
            )
            for t in mine
        }
        for name in ctx.settings.ended & self.sources.keys():  # removed before this start
            self.sources[name].end()
        # Changes while the run goes on (cameras added and removed): ``runtime.control``.
        self.control = ControlInlet(ctx.control) if ctx.control is not None else None
        self.rings_in = {k.ring for k in ctx.links or () if k.dst == ctx.index and k.ring}
        # What the policy chooses among: each task, a source through its SourceRun.
        self.schedulable = [self.sources.get(t.name, t) for t in self.tasks.values()]
        self.blocked: set[RingWriter] = set()  # full output rings: wake when one has room
        if ctx.checkpoints is not None:
            for t in self.tasks.values():
                t.restore(ctx.checkpoints, ctx.index)
        self.instruments.loop_started([t.info for t in self.tasks.values()])

    def costs(self) -> dict[str, float]:
        """Measured seconds per item of every task that processed something."""
        return {n: t.busy / t.items for n, t in self.tasks.items() if t.items}

    def run(self) -> None:
        saving = any(t.saver is not None for t in self.tasks.values())
        if saving:
            on_frame_pressure(self._save_all)  # a source waiting for a slot frees held ones
        try:
            for source in self.sources.values():
                source.start()  # its thread reads ahead while the loop runs the rest
            self._loop(saving)
        finally:
            for source in self.sources.values():
                source.stop()
            if self.control is not None:
                self.control.close()
            self.instruments.loop_ended()
            if saving:
                on_frame_pressure(None)

    def _loop(self, saving: bool) -> None:
        tasks = list(self.tasks.values())
        while not all(t.done for t in tasks):
            self.blocked.clear()
            self._pull()
            now = time.monotonic()
            self.instruments.tick(now)
            decision = choose([s.state(now, self.blocked) for s in self.schedulable], now)
            if decision.task is not None:
                self._run(self.tasks[decision.task])
            elif not self._finish_idle_task():
                if saving:  # nothing to do: save now rather than hold inputs while asleep
                    self._save_all()
                self._sleep(decision.wake_in)

    def _wake(self) -> None:
        """A source's thread has an item (or ended): wake the loop if it sleeps."""
        bell = self.ctx.bell
        if bell is not None:
            bell.ring()
        else:
            self.came.set()

    def _sleep(self, wake_in: float | None) -> None:
        self.instruments.sleeping()
        since = time.monotonic()
        bell = self.ctx.bell
        self.awaited = [s for s in self.sources.values() if s.waiting()]
        if bell is None:
            if self.awaited:
                self.came.wait(wake_in if wake_in is not None else IDLE_WAIT)
                self.came.clear()
            elif wake_in:
                time.sleep(wake_in)
        else:
            bell.wait(self._ready, timeout=wake_in if wake_in is not None else IDLE_WAIT)
        self.instruments.woke(time.monotonic() - since)

    def _ready(self) -> bool:
        """Worth waking for: input arrived (or closed), or a full output ring has room now."""
        return (
            any(f.inlet.news() for f in self.feeds)
            or (self.control is not None and self.control.news())
            or any(w.has_space(1 << 16) for w in self.blocked)
            or any(not s.waiting() for s in self.awaited)
        )

    def _pull(self) -> None:
        """Move items that arrived from other processes into input queues, while they fit."""
        if self.control is not None and self.control.news():
            for change in self.control.read():
                self._apply(change)
        self.feeds = [feed for feed in self.feeds if feed.pull()]

    def _apply(self, change: Change) -> None:
        """A change the driver made to the running run (each may come twice: see
        ``runtime.control``)."""
        if isinstance(change, Attach):
            link = change.link
            if link.ring in self.rings_in or link.consumer not in self.tasks:
                return
            self.rings_in.add(link.ring_name)
            if self.tasks[link.consumer].done:  # every source had ended: the run is ending
                if self.ctx.on_late_source is not None:
                    self.ctx.on_late_source(link.producer)
                return
            self.feeds.append(attach_feed(self.tasks, link))
        elif isinstance(change, EndSource):
            source = self.sources.get(change.source)
            if source is not None and not source.ended:
                source.end()
        elif isinstance(change, Expect):
            inputs = self.tasks[change.task].inputs if change.task in self.tasks else None
            if isinstance(inputs, GatherInputs):
                inputs.expected = change.streams

    def _finish_idle_task(self) -> bool:
        """Close one task whose inputs are all closed and drained; True if one was."""
        for t in self.tasks.values():
            if t.done or t.spec.kind == "source" or not t.inputs.upstream_done:
                continue
            if t.inputs.waiting:
                if t.inputs.ready(time.monotonic()).queued:
                    continue  # it can still run: it waits for room in its output
                # Inputs are closed, items remain, and none can ever run (a join whose inputs
                # can never be completed): say so instead of hanging.
                raise TaskFailed(t.inputs.stuck(), task=t.name)
            self._close(t)
            return True  # its consumers may be runnable now: let the policy look again
        return False

    def _close(self, t: TaskRun) -> None:
        t.save()
        t.done = True
        for outlet in t.outlets:
            outlet.close()
        t.outlets = []
        self.blocked.clear()  # a closed ring never has room again; the next turn looks anew

    def _run(self, t: TaskRun) -> None:
        source = self.sources.get(t.name)
        if source is not None:
            unit = source.next(self.instruments)
            if unit is None:
                self._close(t)
            else:
                self._emit(t, [unit])
            return
        now = time.monotonic()
        self.instruments.queued(t.info, t.inputs.depth, t.inputs.capacity * len(t.inputs.queues))
        units = t.inputs.units(t.inputs.take(now), t.tid)
        self.executor.compute_new(t, units, self.ctx.settings.quarantine)
        self._emit(t, units)

    def _emit(self, t: TaskRun, units: list[Unit]) -> None:
        saver, now, emitted = t.saver, time.monotonic(), 0
        for unit in units:
            value, lease = unit.result, unit.lease
            if saver is not None and lease is not None:
                saver.hold(unit.origin, value, lease)
            if value is None or value is DROPPED:
                if value is None:
                    check_may_skip(t.spec)
                if unit.seq is not None:  # the merge downstream waits for every seq
                    for outlet in t.outlets:
                        outlet.skip(unit.origin, unit.seq)
            else:
                emitted += 1
                for outlet in t.outlets:
                    outlet.put(value, unit.origin, unit.seq, lease, now)
            if lease is not None:
                lease.drop()  # the input is consumed; its outputs hold the lease now
        if emitted:
            self.instruments.emitted(t.info, emitted)
        if saver is not None and saver.due():
            t.save()

    def _dead_letter(self, letter: DeadLetter) -> None:
        self.dead_letters.append(letter)
        if self.ctx.on_dead_letter is not None:
            self.ctx.on_dead_letter(letter)

    def _save_all(self) -> None:
        for t in self.tasks.values():
            t.save()
