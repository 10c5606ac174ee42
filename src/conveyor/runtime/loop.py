"""The loop inside one pipeline: pull inputs, choose a task by policy, run it, pass results on.

The same loop runs the inline backend (every task in this process, no rings) and each process
of the local backend (its share of the tasks; rings to and from the other pipelines), so both
backends have the same semantics by construction.

Within a pipeline, messages pass as plain Python objects through bounded deques (no
serialization). Across pipelines they go through shared-memory rings. A ring message's arrays
are views that are valid until it is committed, and a task may pass such a view on to a task in
the same pipeline; so every in-process item carries a *lease* on the ring messages it came
from, and a message is committed only when all the in-process work derived from it is done.

Joins: a task with several parameters takes one message of each input together: the n-th of
each (zip order), or, with ``join_on=("camera", "index")``, the oldest set whose fields are
equal. Inputs that end unmatched raise ``TaskFailed`` instead of hanging. Keyed stateful tasks
get one instance per value of their key attribute.
"""

from __future__ import annotations

import functools
import time
import traceback
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from conveyor._errors import EndOfChannel, TaskFailed
from conveyor.graph import Graph
from conveyor.monitor.counters import Counters, TaskCounters
from conveyor.monitor.trace import TraceRecorder
from conveyor.runtime import faults
from conveyor.runtime.checkpoint import Checkpoint, CheckpointFile
from conveyor.runtime.deadletter import DeadLetter
from conveyor.runtime.frames import frame_holds, on_frame_pressure, releaser
from conveyor.runtime.gather import Pending, oldest_group
from conveyor.runtime.heartbeat import HeartbeatSlot
from conveyor.runtime.links import Link, inline_links, route
from conveyor.runtime.merge import Merger
from conveyor.runtime.numbering import Numbering, SplitNumbers
from conveyor.runtime.policy import TaskState, choose
from conveyor.runtime.progress import DonePrefix, SourceProgress
from conveyor.task import TaskSpec
from conveyor.transport.doorbell import Doorbell
from conveyor.transport.ring import Message, RingReader, RingWriter

DEFAULT_QUEUE = 64  # items per in-process input queue
GATHER_ROOM = 4  # a gathering task's queue holds this many times more
CPU_PUBLISH = 0.5  # seconds between CPU-time updates of a busy pipeline (statistics)


class _Dropped:
    """The result of an item given up on (a dead letter): nothing goes on from it."""

    def __reduce__(self) -> str:  # one object, also after a checkpoint's pickle round trip
        return "DROPPED"


DROPPED = _Dropped()


class Lease:
    """Keeps ring messages (or other resources) alive while in-process work derived from them
    remains. Released (its callbacks run) when its count drops to zero."""

    __slots__ = ("refs", "on_release")

    def __init__(self, on_release: list[Callable[[], None]]) -> None:
        self.refs = 1
        self.on_release = on_release

    def add(self, n: int) -> None:
        self.refs += n

    def drop(self) -> None:
        self.refs -= 1
        if self.refs == 0:
            for callback in self.on_release:
                callback()


@dataclass
class _Entry:
    value: Any
    lease: Lease | None
    arrived: float
    seq: int | None = None  # set on the input of a replica: its place in the split stream
    origin: int = 0  # deterministic id of what this item derives from (replays dedupe by it)


@dataclass
class _Unit:
    """One output of a call: from one entry (in a batch) or from all of them."""

    entries: list[_Entry]
    lease: Lease | None
    origin: int
    seq: int | None
    result: Any = None


@dataclass
class _Checkpointing:
    file: CheckpointFile
    every: Checkpoint


@dataclass
class _Route:
    """One output edge into a replicated task: each item goes to one replica's outlet."""

    key: str | None
    outlets: list[RingWriter | tuple[_Task, str]]  # by replica: a ring, or a local queue


@dataclass
class _Task:
    spec: TaskSpec
    order: int
    queues: dict[str, deque[_Entry]] = field(default_factory=dict)
    upstream_open: dict[str, int] = field(default_factory=dict)  # param -> producers not done
    local_out: list[tuple[_Task, str]] = field(default_factory=list)
    ring_out: list[RingWriter] = field(default_factory=list)
    routes: list[_Route] = field(default_factory=list)  # into replicated consumers
    merge_out: list[RingWriter | Merger] = field(default_factory=list)  # as a replica
    # Derived from the four above once wired (backpressure checks and closing use them):
    writers: list[RingWriter] = field(default_factory=list)  # every output ring
    local_targets: list[tuple[_Task, str]] = field(default_factory=list)  # every local queue
    local_mergers: list[Merger] = field(default_factory=list)
    collect: Callable[[Any], None] | None = None
    instances: dict[Any, Any] = field(default_factory=dict)
    generator: Iterator[Any] | None = None
    done: bool = False
    calls: int = 0
    items: int = 0
    next_seq: int = 0  # numbers the items this task sends into replicas
    numbering: Numbering | None = None  # ... or this, in a run that restarts pipelines
    tid: int = 0  # a stable number for the task's name (origins are derived with it)
    prefix: DonePrefix | None = None  # a source's finished items (set by _resume)
    acknowledge: Callable[[int], None] | None = None  # a source's hook: items before n done
    capacity: int = DEFAULT_QUEUE  # items per input queue
    latest: dict[Any, Any] = field(default_factory=dict)  # gather: member -> newest group key
    busy: float = 0.0  # seconds spent in the task's own code
    stats: TaskCounters | None = None  # its row of the run's counters (monitor.counters)
    timeout: float | None = None  # what the monitor allows one call (None: no limit)
    # Checkpointing (stateful tasks in a run that can restart them):
    checkpoint: _Checkpointing | None = None
    held: list[Lease] = field(default_factory=list)  # inputs held until the next checkpoint
    recent: dict[int, Any] = field(default_factory=dict)  # origin -> output, not committed
    replay: dict[int, Any] = field(default_factory=dict)  # restored: outputs to re-emit
    saved_at: float = 0.0


class PipelineLoop:
    """Runs the tasks of ``graph`` placed in pipeline ``index`` until every one has finished.

    ``links`` are the plan's channels (``runtime.links``); the ones that start or end here are
    used, ring links opened by name. Without links, every task of the graph runs here (inline).
    """

    def __init__(
        self,
        graph: Graph,
        tasks: list[str],
        links: list[Link] | None = None,
        index: int = 0,
        collect: dict[str, Callable[[Any], None]] | None = None,
        bell: Doorbell | None = None,
        queue_size: int = DEFAULT_QUEUE,
        max_source_items: int | None = None,
        progress: SourceProgress | None = None,
        heartbeat: HeartbeatSlot | None = None,
        checkpoints: str | None = None,
        quarantine: frozenset[tuple[str, int]] = frozenset(),
        suspects: frozenset[tuple[str, int]] = frozenset(),
        stall_timeout: float | None = None,
        on_dead_letter: Callable[[DeadLetter], None] | None = None,
        split_numbers: SplitNumbers | None = None,
        counters: Counters | None = None,
        trace: TraceRecorder | None = None,
    ) -> None:
        self.graph = graph
        self.trace = trace  # the timeline recorder (monitor.trace), when the run is traced
        self.max_source_items = max_source_items  # stop sources early (a warm-up run)
        self.queue_size = queue_size
        self.bell = bell
        self.progress = progress  # where sources resume after a restart (local backend)
        self.heartbeat = heartbeat  # what the task monitor watches (local backend)
        self.quarantine = quarantine  # (task, origin): crashed or hung too often, skipped
        self.suspects = suspects  # (task, origin): crashed or hung before, run alone
        self.dead_letters: list[DeadLetter] = []
        self.on_dead_letter = on_dead_letter
        mine = set(tasks)
        self.tasks: dict[str, _Task] = {
            n: _Task(graph.tasks[n], i) for i, n in enumerate(graph.order) if n in mine
        }
        # Statistics (monitor.counters): this pipeline's rows of the run's table, if it has one.
        self.stats_row = counters.pipeline_row(index) if counters is not None else None
        for t in self.tasks.values():
            t.tid = zlib.crc32(t.spec.name.encode())
            if counters is not None:
                t.stats = counters.task_row(index, t.order)
            # A gathering task holds whole groups (one message per camera): room for several.
            t.capacity = queue_size * GATHER_ROOM if t.spec.gather else queue_size
            t.timeout = t.spec.timeout
            if t.timeout is None and t.spec.kind != "source":  # a source may wait on a camera
                t.timeout = stall_timeout
            for param, _tp in t.spec.inputs:
                t.queues[param] = deque()
                t.upstream_open[param] = 0
        self._readers: list[tuple[RingReader | Merger, str, str]] = []  # (inlet, task, param)
        self._mergers: dict[tuple[str, str], Merger] = {}
        self._blocked_writers: set[RingWriter] = set()
        self._wire(inline_links(graph) if links is None else links, index, progress is not None)
        for t in self.tasks.values():
            outlets = [o for r in t.routes for o in r.outlets]
            t.writers = [
                o for o in [*t.ring_out, *t.merge_out, *outlets] if isinstance(o, RingWriter)
            ]
            t.local_targets = t.local_out + [o for o in outlets if isinstance(o, tuple)]
            t.local_mergers = [o for o in t.merge_out if isinstance(o, Merger)]
            if t.routes and split_numbers is not None:
                t.numbering = split_numbers.numbering(t.spec.name)
        for name, callback in (collect or {}).items():
            self.tasks[name].collect = callback
        if checkpoints is not None:
            self._restore(checkpoints, index)
        if faults.ACTIVE:
            for name in self.tasks:
                faults.maybe_fail(name, 0, at="start")

    def _wire(self, links: list[Link], index: int, supervised: bool) -> None:
        """Open this pipeline's ends of ``links``. In a supervised run a writer waits for a
        dead consumer's replacement instead of failing (the supervisor restarts it)."""
        routes: dict[tuple[str, str | None, str], _Route] = {}
        for link in links:
            if link.consumer is not None and link.dst == index:  # an input of this pipeline
                if link.merged:
                    merger = self._merger(link.consumer, link.param)
                    if link.local:
                        merger.add_local()
                    else:
                        merger.add_reader(RingReader(link.ring_name))
                else:
                    self.tasks[link.consumer].upstream_open[link.param] += 1
                    if not link.local:
                        reader = RingReader(link.ring_name)
                        self._readers.append((reader, link.consumer, link.param))
            if link.src != index:
                continue
            producer = self.tasks[link.producer]
            outlet: RingWriter | tuple[_Task, str] | Merger
            if link.local:
                assert link.consumer is not None
                if link.merged:
                    outlet = self._merger(link.consumer, link.param)
                else:
                    outlet = (self.tasks[link.consumer], link.param)
            else:
                outlet = RingWriter(link.ring_name, wait_for_consumer=supervised)
            if link.merged:
                assert not isinstance(outlet, tuple)
                producer.merge_out.append(outlet)
            elif link.replicas > 1:
                assert not isinstance(outlet, Merger)
                route = routes.get((link.producer, link.consumer, link.param))
                if route is None:
                    route = _Route(link.key, [None] * link.replicas)  # type: ignore[list-item]
                    routes[(link.producer, link.consumer, link.param)] = route
                    producer.routes.append(route)
                route.outlets[link.replica] = outlet
            elif isinstance(outlet, RingWriter):
                producer.ring_out.append(outlet)
            else:
                assert isinstance(outlet, tuple)
                producer.local_out.append(outlet)

    def _merger(self, task: str, param: str) -> Merger:
        merger = self._mergers.get((task, param))
        if merger is None:
            merger = self._mergers[(task, param)] = Merger([])
            self.tasks[task].upstream_open[param] += 1
            self._readers.append((merger, task, param))
        return merger

    def costs(self) -> dict[str, float]:
        """Measured seconds per item of every task that processed something."""
        return {n: t.busy / t.items for n, t in self.tasks.items() if t.items}

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        if self.stats_row is not None:
            self.stats_row.started(time.monotonic(), time.process_time())
        saving = any(t.checkpoint is not None for t in self.tasks.values())
        if saving:
            on_frame_pressure(self._save_all)  # a source waiting for a slot frees held ones
        try:
            self._loop(saving)
        finally:
            if self.stats_row is not None:
                self.stats_row.cpu(time.process_time())
            if self.trace is not None:
                self.trace.flush()
            if saving:
                on_frame_pressure(None)

    def _loop(self, saving: bool) -> None:
        row, cpu_due = self.stats_row, 0.0
        while not all(t.done for t in self.tasks.values()):
            self._blocked_writers.clear()
            self._pull()
            now = time.monotonic()
            if row is not None and now >= cpu_due:  # a pipeline that never sleeps shows too
                row.cpu(time.process_time())
                cpu_due = now + CPU_PUBLISH
            decision = choose([self._state(t, now) for t in self.tasks.values()], now)
            if decision.task is not None:
                self._run(self.tasks[decision.task])
                continue
            if self._finish_idle_tasks():
                continue
            if saving:  # nothing to do: save now rather than hold inputs while asleep
                self._save_all()
            self._sleep(decision.wake_in)

    def _sleep(self, wake_in: float | None) -> None:
        row = self.stats_row
        if row is not None:  # asleep: the moment to publish this process's CPU time
            row.cpu(time.process_time())
            since = time.monotonic()
        if self.bell is None:
            if wake_in:
                time.sleep(wake_in)
        else:
            self.bell.wait(self._ready, timeout=wake_in if wake_in is not None else 1.0)
        if row is not None:
            row.slept(time.monotonic() - since)

    def _ready(self) -> bool:
        """Worth waking for: input arrived (or closed), or a full output ring has room now."""
        return any(
            r.has_data() or (not isinstance(r, Merger) and r.producer_closed)
            for r, _, _ in self._readers
        ) or any(w.has_space(1 << 16) for w in self._blocked_writers)

    def _pull(self) -> None:
        """Move messages that arrived on rings into input queues, while they have room."""
        for item in list(self._readers):
            inlet, task_name, param = item
            queue = self.tasks[task_name].queues[param]
            capacity = self.tasks[task_name].capacity
            while len(queue) < capacity:
                try:
                    got = inlet.try_read()
                except EndOfChannel:
                    self._readers.remove(item)
                    self.tasks[task_name].upstream_open[param] -= 1
                    break
                if got is None:
                    break
                if isinstance(got, tuple):  # from a merge: (record, ring message or lease)
                    (origin, _seq, value), token = got
                    lease = Lease([token.commit]) if isinstance(token, Message) else token
                    if value is None:  # a replica's skip marker
                        if lease is not None:
                            lease.drop()
                        continue
                    queue.append(_Entry(value, lease, time.monotonic(), None, origin))
                else:  # every ring message is a record (origin, seq, value)
                    origin, seq, value = got.value
                    queue.append(_Entry(value, Lease([got.commit]), time.monotonic(), seq, origin))

    def _state(self, t: _Task, now: float) -> TaskState:
        spec = t.spec
        if spec.gather is not None:
            return self._gather_state(t, now)
        if spec.join_on:
            queued = len(next(iter(t.queues.values()))) if self._match(t) is not None else 0
        else:
            queued = min((len(q) for q in t.queues.values()), default=0)
        oldest = None
        if queued:
            oldest = min(q[0].arrived for q in t.queues.values())
        return TaskState(
            name=spec.name,
            order=t.order,
            queued=queued,
            capacity=self.queue_size,
            batch=spec.batch,
            max_wait=spec.max_wait,
            oldest=oldest,
            outputs_full=self._outputs_full(t),
            is_source=spec.kind == "source",
            exhausted=t.done,
            upstream_done=not any(t.upstream_open.values()),
        )

    def _gather_state(self, t: _Task, now: float) -> TaskState:
        upstream_done = not any(t.upstream_open.values())
        positions, due_in = self._group(t, now, upstream_done)
        (queue,) = t.queues.values()
        # A group that is not complete yet is shown to the policy as a partial batch due in
        # ``due_in``: the policy then runs other tasks and wakes the loop when it is due.
        return TaskState(
            name=t.spec.name,
            order=t.order,
            queued=len(queue) if positions or due_in is not None else 0,
            capacity=t.capacity,
            batch=1 if positions else len(queue) + 1,
            max_wait=due_in or 0.0,
            oldest=now,
            outputs_full=self._outputs_full(t),
            upstream_done=upstream_done,
        )

    def _group(
        self, t: _Task, now: float, upstream_done: bool
    ) -> tuple[list[int] | None, float | None]:
        gather = t.spec.gather
        assert gather is not None
        (queue,) = t.queues.values()
        pending = [
            Pending(gather.key_of(e.value), gather.member_of(e.value), e.arrived) for e in queue
        ]
        return oldest_group(pending, t.latest, now, t.spec.max_wait, upstream_done)

    def _outputs_full(self, t: _Task) -> bool:
        if any(len(c.queues[p]) >= c.capacity for c, p in t.local_targets):
            return True
        if any(m.local_backlog >= self.queue_size for m in t.local_mergers):
            return True
        full = [w for w in t.writers if not w.has_space(1 << 16)]
        self._blocked_writers.update(full)
        return bool(full)

    def _finish_idle_tasks(self) -> bool:
        """Mark one task whose inputs are all closed and drained as done; True if one was."""
        for t in self.tasks.values():
            if t.done or t.spec.kind == "source" or any(t.upstream_open.values()):
                continue
            if any(t.queues.values()):
                if self._state(t, time.monotonic()).queued:
                    continue  # it can still run: it waits for room in its output
                # Inputs are closed, messages remain, and none can ever run: a join whose
                # inputs can never be completed. Say so instead of hanging.
                left = {p: len(q) for p, q in t.queues.items()}
                how = f"on {t.spec.join_on}" if t.spec.join_on else "in order (zip)"
                raise TaskFailed(
                    f"join task {t.spec.name!r}: its inputs ended with unmatched messages "
                    f"{left}; a join needs one message from every input, matched {how}",
                    task=t.spec.name,
                )
            self._close(t)
            return True  # its consumers may be runnable now: let the policy look again
        return False

    def _match(self, t: _Task) -> list[int] | None:
        """Positions of the oldest complete set of a join_on task (one entry per input)."""
        fields = t.spec.join_on
        queues = list(t.queues.values())
        for i, entry in enumerate(queues[0]):
            key = tuple(getattr(entry.value, f) for f in fields)
            found = [i]
            for other in queues[1:]:
                pos = next(
                    (
                        j
                        for j, e in enumerate(other)
                        if tuple(getattr(e.value, f) for f in fields) == key
                    ),
                    None,
                )
                if pos is None:
                    break
                found.append(pos)
            else:
                return found
        if any(len(q) >= self.queue_size for q in queues):
            full = [p for p, q in t.queues.items() if len(q) >= self.queue_size]
            raise TaskFailed(
                f"join task {t.spec.name!r}: input(s) {full} hold {self.queue_size} messages "
                f"and none matches the other inputs on {fields}; check the join fields",
                task=t.spec.name,
            )
        return None

    def _close(self, t: _Task) -> None:
        if t.held:
            self._save(t)
        t.done = True
        for writer in t.writers:
            writer.close()
            self._blocked_writers.discard(writer)
        for consumer, param in t.local_targets:
            consumer.upstream_open[param] -= 1
        for merger in t.local_mergers:
            merger.close_local()
        t.ring_out, t.merge_out, t.routes = [], [], []
        t.writers, t.local_targets, t.local_mergers = [], [], []

    # -- running one task ----------------------------------------------------------------------

    def _run(self, t: _Task) -> None:
        if t.spec.kind == "source":
            self._run_source(t)
            return
        if t.stats is not None or self.trace is not None:
            depth = sum(len(q) for q in t.queues.values())
            if t.stats is not None:
                t.stats.queue(depth, t.capacity * len(t.queues))
            if self.trace is not None:
                self.trace.queue(t.spec.name, time.perf_counter(), depth)
        units = []
        todo = []
        for unit in self._units(t, self._take(t)):
            units.append(unit)
            if self._quarantined(t, unit.entries):
                unit.result = DROPPED  # the supervisor recorded it as a dead letter
            elif unit.origin in t.replay:  # covered by the restored checkpoint: not again
                unit.result = t.replay.pop(unit.origin)
            else:
                todo.append(unit)
        if todo:
            self._compute(t, todo)
        self._emit(t, units)

    def _take(self, t: _Task) -> list[_Entry]:
        """The entries of the next call (the policy chose ``t``, so they are there)."""
        spec = t.spec
        if spec.gather is not None:
            positions, _ = self._group(t, time.monotonic(), not any(t.upstream_open.values()))
            assert positions  # the policy chose it, so a group is ready
            (queue,) = t.queues.values()
            entries = [queue[i] for i in positions]
            for i in reversed(positions):
                del queue[i]
            return entries
        if spec.batched:
            (queue,) = t.queues.values()
            entries = [queue.popleft()]
            # An item suspected of crashing its pipeline runs alone, so that a crash points
            # at it and not at a whole batch; the items around it batch as usual.
            if not self._suspect(t, entries[0]):
                while queue and len(entries) < spec.batch and not self._suspect(t, queue[0]):
                    entries.append(queue.popleft())
            return entries
        if spec.join_on:
            positions = self._match(t)
            assert positions is not None  # the policy chose it, so a complete set exists
            entries = []
            for (p, _), pos in zip(spec.inputs, positions, strict=True):
                queue = t.queues[p]
                entries.append(queue[pos])
                del queue[pos]
            return entries
        return [t.queues[p].popleft() for p, _ in t.spec.inputs]

    def _units(self, t: _Task, entries: list[_Entry]) -> list[_Unit]:
        """What the call produces: one output per entry for a batch, else one in all."""
        tid = t.tid
        if t.spec.batched:
            return [_Unit([e], e.lease, _derive(e.origin, tid), e.seq) for e in entries]
        if t.spec.gather is not None:
            origin = _derive(tuple(sorted(e.origin for e in entries)), tid)
            return [_Unit(entries, _holding(entries), origin, None)]
        parent = entries[0].origin if len(entries) == 1 else tuple(e.origin for e in entries)
        return [_Unit(entries, _holding(entries), _derive(parent, tid), entries[0].seq)]

    def _suspect(self, t: _Task, entry: _Entry) -> bool:
        return bool(self.suspects) and (t.spec.name, entry.origin) in self.suspects

    def _quarantined(self, t: _Task, entries: list[_Entry]) -> bool:
        return bool(self.quarantine) and any(
            (t.spec.name, e.origin) in self.quarantine for e in entries
        )

    def _compute(self, t: _Task, units: list[_Unit]) -> None:
        """Call the task on ``units``, applying its ``on_error`` policy to what it raises."""
        spec = t.spec
        values = [e.value for u in units for e in u.entries]
        if spec.batched or spec.gather is not None:
            args: tuple[Any, ...] = (values,)
        else:
            args = tuple(values)
        attempts = 1 + (spec.retries if spec.on_error == "retry" else 0)
        for _ in range(attempts):
            try:
                results = self._call(t, units, args)
                break
            except TaskFailed as exc:
                if spec.on_error == "fail":
                    raise
                error = exc
        else:
            if len(units) > 1:  # a batch raised: find the items at fault one by one
                for unit in units:
                    self._compute(t, [unit])
                return
            self._give_up(t, units[0], error, attempts)
            return
        if not spec.batched:
            units[0].result = results
            return
        if not isinstance(results, list) or len(results) != len(units):
            raise TaskFailed(
                f"batch task {spec.name!r} must return a list with one result per input: "
                f"got {_describe(results)} for {len(units)} inputs",
                task=spec.name,
            )
        for unit, result in zip(units, results, strict=True):
            unit.result = result

    def _give_up(self, t: _Task, unit: _Unit, error: TaskFailed, attempts: int) -> None:
        unit.result = DROPPED
        letter = DeadLetter(
            task=t.spec.name,
            origin=unit.entries[0].origin,
            item=error.item,
            reason="raised",
            error=str(error),
            traceback=error.remote_traceback,
            attempts=attempts,
        )
        self.dead_letters.append(letter)
        if t.stats is not None:
            t.stats.dead()
        if self.on_dead_letter is not None:
            self.on_dead_letter(letter)

    def _run_source(self, t: _Task) -> None:
        spec = t.spec
        if t.generator is None:
            made: Any = spec.target()  # a generator, or an instance with __iter__
            t.generator = iter(made)
            t.acknowledge = getattr(made, "acknowledge", None)
            if self.progress is not None:
                self._resume(t, getattr(made, "resume", None))
            elif t.acknowledge is not None:
                t.prefix = DonePrefix(0)
        if self.max_source_items is not None and t.calls >= self.max_source_items:
            self._close(t)
            return
        beat = self.heartbeat
        started = time.perf_counter()
        produced = 0  # the call that finds the source exhausted counts no item
        if beat is not None:
            beat.start(t.order, time.monotonic(), spec.timeout, [])
        try:
            if faults.ACTIVE:
                faults.maybe_fail(spec.name, t.calls)
            item = next(t.generator)
            produced = 1
        except StopIteration:
            self._close(t)
            return
        except Exception as exc:
            raise _failed(spec, None, exc) from exc
        finally:
            if beat is not None:
                beat.stop()
            spent = time.perf_counter() - started
            t.busy += spent
            if t.stats is not None:
                t.stats.call(produced, spent)
            if self.trace is not None:
                self.trace.call(spec.name, started, spent, produced, t.calls)
        n = t.calls
        t.calls += 1
        t.items += 1
        held = frame_holds(item)  # the run takes over the source's hold on its frames
        on_done = [releaser(held)] if held else []
        if t.prefix is not None:
            on_done.append(self._marker(t, n))
        lease = Lease(on_done) if on_done else None
        self._emit(t, [_Unit([], lease, _derive(n, t.tid), None, item)])

    def _resume(self, t: _Task, resume: Callable[[int], None] | None) -> None:
        """Skip the items a predecessor of this pipeline finished (see runtime.progress).
        A source with a ``resume(n)`` method is told to start at item n instead."""
        assert self.progress is not None and t.generator is not None
        skip = self.progress.get(t.spec.name)
        t.prefix = DonePrefix(skip)
        if resume is not None:
            resume(skip)
            t.calls += skip
            return
        for _ in range(skip):
            try:
                item = next(t.generator)
            except StopIteration:
                break
            releaser(frame_holds(item))()
            t.calls += 1

    def _marker(self, t: _Task, n: int) -> Callable[[], None]:
        progress, name, prefix, acknowledge = self.progress, t.spec.name, t.prefix, t.acknowledge
        assert prefix is not None  # set by _resume

        def done() -> None:
            upto = prefix.done(n)
            if progress is not None:
                progress.set(name, upto)
            if acknowledge is not None:  # a source that wants to know (backends.bridge)
                acknowledge(upto)

        return done

    def _call(self, t: _Task, units: list[_Unit], args: tuple[Any, ...]) -> Any:
        spec = t.spec
        item = args[0] if len(args) == 1 else args
        try:
            if spec.stateful:
                first = args[0][0] if spec.batched or spec.gather else args[0]
                key = getattr(first, spec.key) if spec.key else None
                instance = t.instances.get(key)
                if instance is None:
                    instance = t.instances[key] = spec.target()
                fn = instance
            else:
                fn = spec.target
            beat = self.heartbeat
            if beat is not None:
                origins = [e.origin for u in units for e in u.entries]
                beat.start(t.order, time.monotonic(), t.timeout, origins)
            try:
                if faults.ACTIVE:
                    faults.maybe_fail(spec.name, t.calls)
                t.calls += 1
                t.items += len(units)
                started = time.perf_counter()
                try:
                    return fn(*args)
                finally:
                    spent = time.perf_counter() - started
                    t.busy += spent
                    if t.stats is not None:
                        t.stats.call(len(units), spent)
                    if self.trace is not None:
                        first = units[0].origin if units else None
                        self.trace.call(spec.name, started, spent, len(units), first)
            finally:
                if beat is not None:
                    beat.stop()
        except TaskFailed:
            raise
        except Exception as exc:
            raise _failed(spec, item, exc) from exc

    def _emit(self, t: _Task, units: list[_Unit]) -> None:
        optional = t.spec.optional_output
        saving = t.checkpoint is not None
        emitted = 0
        for unit in units:
            value, lease, origin, seq = unit.result, unit.lease, unit.origin, unit.seq
            if saving and lease is not None:
                # Until the next checkpoint, hold the input (it is replayed after a crash) and
                # remember this output (a replay re-emits it instead of calling the task).
                t.recent[origin] = value
                lease.on_release.append(functools.partial(t.recent.pop, origin, None))
                lease.add(1)
                t.held.append(lease)
            if value is None or value is DROPPED:
                if value is None and not (optional or t.spec.kind == "sink"):
                    raise TaskFailed(
                        f"task {t.spec.name!r} returned None but is declared to return "
                        f"{t.spec.output.__name__ if t.spec.output else '?'}; annotate it "
                        "'-> T | None' if it may produce nothing",
                        task=t.spec.name,
                    )
                if seq is not None:  # the merge downstream waits for every seq: skip it
                    for outlet in t.merge_out:
                        if isinstance(outlet, Merger):
                            outlet.push((origin, seq, None), None)
                        else:
                            outlet.write((origin, seq, None), origin=origin)
                if lease is not None:
                    lease.drop()
                continue
            emitted += 1
            for writer in t.ring_out:
                # copied into shared memory: needs no lease; a replayed origin is dropped
                writer.write((origin, None, value), origin=origin)
            if t.collect is not None:
                t.collect(value)
            now = time.monotonic()
            if t.merge_out:
                assert seq is not None
                for outlet in t.merge_out:
                    if isinstance(outlet, Merger):
                        if lease is not None:
                            lease.add(1)
                        outlet.push((origin, seq, value), lease)
                    else:
                        outlet.write((origin, seq, value), origin=origin)
            if t.routes:
                if t.numbering is not None:  # survives a restart of this pipeline
                    number = t.numbering.number(origin)
                else:
                    number = t.next_seq
                    t.next_seq += 1
                for r in t.routes:
                    target = r.outlets[route(value, number, r.key, len(r.outlets))]
                    if isinstance(target, tuple):
                        if lease is not None:
                            lease.add(1)
                        entry = _Entry(value, lease, now, number, origin)
                        target[0].queues[target[1]].append(entry)
                    else:
                        target.write((origin, number, value), origin=origin)
            if lease is not None:
                lease.add(len(t.local_out))
            for consumer, param in t.local_out:
                consumer.queues[param].append(_Entry(value, lease, now, None, origin))
            if lease is not None:
                lease.drop()  # the input is consumed; its outputs hold the lease now
        if t.stats is not None and emitted:
            t.stats.emitted(emitted)
        if saving and t.held:
            ckpt = t.checkpoint
            assert ckpt is not None
            due = len(t.held) >= ckpt.every.items
            if due or time.monotonic() - t.saved_at >= ckpt.every.seconds:
                self._save(t)

    # -- checkpoints (see runtime.checkpoint) ---------------------------------------------------

    def _restore(self, prefix: str, index: int) -> None:
        for t in self.tasks.values():
            every = t.spec.checkpoint
            if not t.spec.stateful or every is None:
                continue
            t.checkpoint = _Checkpointing(CheckpointFile(prefix, t.spec.name, index), every)
            saved = t.checkpoint.file.load(t.spec.target)
            if saved is not None:
                t.instances, t.replay = saved.states, saved.outputs
            t.saved_at = time.monotonic()

    def _save(self, t: _Task) -> None:
        """Save ``t``'s state, then let go of the inputs it held for replay."""
        assert t.checkpoint is not None
        t.checkpoint.file.save(t.instances, {**t.replay, **t.recent})
        t.saved_at = time.monotonic()
        held, t.held = t.held, []
        for lease in held:
            lease.drop()

    def _save_all(self) -> None:
        for t in self.tasks.values():
            if t.held:
                self._save(t)


def _holding(entries: list[_Entry]) -> Lease | None:
    """A lease for an output made from several inputs: it holds every input's lease."""
    leases = [e.lease for e in entries if e.lease is not None]
    if len(leases) <= 1:
        return leases[0] if leases else None
    return Lease([x.drop for x in leases])


def _derive(parent: int | tuple[int, ...], tid: int) -> int:
    """The origin of an output: a deterministic function of its inputs' origins and the task
    (ints and tuples of ints hash the same in every process, unlike str)."""
    return hash((parent, tid)) or 1


def _failed(spec: TaskSpec, item: Any, exc: BaseException) -> TaskFailed:
    text = "".join(traceback.format_exception(exc))
    return TaskFailed(
        f"task {spec.name!r} raised {type(exc).__name__}: {exc} (item: {_describe(item)})",
        task=spec.name,
        item=_describe(item),
        remote_traceback=text,
    )


def _describe(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
