"""Per-task and per-pipeline counters in shared memory, written without locks.

Every (pipeline, task) pair owns one row, written only by the pipeline that runs the task:
a single writer per row, so plain stores into shared memory need no lock (a reader may see a
row mid-update, off by one call, which a statistics snapshot tolerates). A replicated task has
one row per replica; a snapshot sums them. Each pipeline also owns a row of its own (CPU
seconds, sleeps). The parent creates the table before the pipelines start and reads it while
they run and after they end: the counters outlive a pipeline that dies, so a restarted one
adds to them.

A call's duration goes into a histogram of ``BUCKETS`` power-of-two buckets (bucket k: up to
``FIRST_BUCKET * 2**k`` seconds), from which percentiles are read: a few words per task, an
O(1) update, and no samples kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.runtime.instrument import Instrument, TaskInfo
from conveyor.runtime.shared_words import SharedWords

BUCKETS = 28
FIRST_BUCKET = 10e-6  # seconds: the top of bucket 0 (calls up to 10 us)
_CALLS, _IN, _OUT, _DEAD, _DROPPED, _QUEUE, _CAPACITY, _BUSY, _HIST = range(9)
TASK_WORDS = _HIST + BUCKETS
_CPU, _SLEEPS, _SLEPT, _STARTED, _STARTS = range(5)  # pipeline rows
PIPELINE_WORDS = 5


class Counters:
    """The run's counter table: ``pipelines`` x ``tasks`` task rows, then pipeline rows."""

    def __init__(self, words: SharedWords | None, pipelines: int, tasks: int) -> None:
        self.words = words
        self.pipelines, self.tasks = pipelines, tasks
        count = self.word_count(pipelines, tasks)
        if words is None:  # one process (the inline backend): private memory, same layout
            block = memoryview(bytearray(8 * count))
            self.ints, self.floats = block.cast("q"), block.cast("d")
        else:
            self.ints, self.floats = words.ints, words.floats

    @staticmethod
    def word_count(pipelines: int, tasks: int) -> int:
        return pipelines * tasks * TASK_WORDS + pipelines * PIPELINE_WORDS

    @classmethod
    def create(cls, pipelines: int, tasks: int) -> Counters:
        return cls(SharedWords.create("stats", cls.word_count(pipelines, tasks)), pipelines, tasks)

    @classmethod
    def attach(cls, name: str, pipelines: int, tasks: int) -> Counters:
        words = SharedWords.attach(name, cls.word_count(pipelines, tasks))
        return cls(words, pipelines, tasks)

    @classmethod
    def private(cls, pipelines: int, tasks: int) -> Counters:
        return cls(None, pipelines, tasks)

    @property
    def name(self) -> str | None:
        return self.words.name if self.words is not None else None

    def _task_base(self, pipeline: int, task: int) -> int:
        return (pipeline * self.tasks + task) * TASK_WORDS

    def _pipeline_base(self, pipeline: int) -> int:
        return self.pipelines * self.tasks * TASK_WORDS + pipeline * PIPELINE_WORDS

    def task_row(self, pipeline: int, task: int) -> TaskCounters:
        return TaskCounters(self, self._task_base(pipeline, task))

    def pipeline_row(self, pipeline: int) -> PipelineCounters:
        return PipelineCounters(self, self._pipeline_base(pipeline))

    def read_task(self, pipeline: int, task: int) -> RawTask:
        base = self._task_base(pipeline, task)
        ints, floats = self.ints, self.floats
        return RawTask(
            calls=int(ints[base + _CALLS]),
            items_in=int(ints[base + _IN]),
            items_out=int(ints[base + _OUT]),
            dead=int(ints[base + _DEAD]),
            dropped=int(ints[base + _DROPPED]),
            queue=int(ints[base + _QUEUE]),
            capacity=int(ints[base + _CAPACITY]),
            busy=float(floats[base + _BUSY]),
            histogram=tuple(int(v) for v in ints[base + _HIST : base + _HIST + BUCKETS]),
        )

    def read_pipeline(self, pipeline: int) -> RawPipeline:
        base = self._pipeline_base(pipeline)
        f = self.floats
        return RawPipeline(
            cpu=float(f[base + _CPU]),
            sleeps=int(self.ints[base + _SLEEPS]),
            slept=float(f[base + _SLEPT]),
            started=float(f[base + _STARTED]),
            starts=int(self.ints[base + _STARTS]),
        )

    def close(self) -> None:
        self.ints.release()
        self.floats.release()
        if self.words is not None:
            self.words.close()


@dataclass(frozen=True)
class RawTask:
    calls: int
    items_in: int
    items_out: int
    dead: int
    dropped: int  # a live source's items it let go unsent (the pipeline was behind)
    queue: int
    capacity: int
    busy: float
    histogram: tuple[int, ...]


@dataclass(frozen=True)
class RawPipeline:
    cpu: float  # CPU seconds of the pipeline's process(es), as last written
    sleeps: int
    slept: float
    started: float  # time.monotonic() when the (first) process started; 0: never
    starts: int  # processes started: 1, plus one per restart


def bucket(seconds: float) -> int:
    """The histogram bucket of a call of ``seconds``."""
    if seconds <= FIRST_BUCKET:
        return 0
    return min(BUCKETS - 1, math.ceil(math.log2(seconds / FIRST_BUCKET)))


def percentile(histogram: tuple[int, ...] | list[int], q: float) -> float:
    """The ``q``-th percentile (0-100) of the calls in ``histogram``: the top of the bucket
    that holds it (an over-estimate by less than 2x), 0 when there are none."""
    total = sum(histogram)
    if total == 0:
        return 0.0
    rank = q / 100 * total
    seen = 0
    for k, n in enumerate(histogram):
        seen += n
        if seen >= rank and n:
            return FIRST_BUCKET * 2.0**k
    return FIRST_BUCKET * 2.0 ** (len(histogram) - 1)


class TaskCounters:
    """The writer's side of one task row: a few stores per call, no lock, no system call."""

    __slots__ = ("_ints", "_floats", "_base")

    def __init__(self, table: Counters, base: int) -> None:
        self._ints, self._floats, self._base = table.ints, table.floats, base

    def call(self, items: int, seconds: float) -> None:
        ints, base = self._ints, self._base
        ints[base + _CALLS] += 1
        ints[base + _IN] += items
        self._floats[base + _BUSY] += seconds
        ints[base + _HIST + bucket(seconds)] += 1

    def emitted(self, items: int) -> None:
        self._ints[self._base + _OUT] += items

    def dead(self) -> None:
        self._ints[self._base + _DEAD] += 1

    def dropped(self, items: int) -> None:
        self._ints[self._base + _DROPPED] += items

    def queue(self, depth: int, capacity: int) -> None:
        self._ints[self._base + _QUEUE] = depth
        self._ints[self._base + _CAPACITY] = capacity


class PipelineCounters:
    """The writer's side of one pipeline row."""

    __slots__ = ("_ints", "_floats", "_base", "_cpu_at_start")

    def __init__(self, table: Counters, base: int) -> None:
        self._ints, self._floats, self._base = table.ints, table.floats, base
        self._cpu_at_start = 0.0

    def started(self, now: float, cpu: float) -> None:
        """A (possibly replacement) process of this pipeline begins: its CPU adds on."""
        if self._floats[self._base + _STARTED] == 0.0:
            self._floats[self._base + _STARTED] = now
        self._ints[self._base + _STARTS] += 1
        self._cpu_at_start = self._floats[self._base + _CPU] - cpu

    def cpu(self, seconds: float) -> None:
        """This process's CPU seconds so far (``time.process_time()``)."""
        self._floats[self._base + _CPU] = self._cpu_at_start + seconds

    def slept(self, seconds: float) -> None:
        self._ints[self._base + _SLEEPS] += 1
        self._floats[self._base + _SLEPT] += seconds


CPU_PUBLISH = 0.5  # seconds between CPU-time updates of a busy pipeline


class CounterHook(Instrument):
    """Writes one pipeline's rows of the run's statistics table from its loop's events."""

    def __init__(self, table: Counters, pipeline: int, tasks: int) -> None:
        self.row = table.pipeline_row(pipeline)
        self.tasks = [table.task_row(pipeline, order) for order in range(tasks)]
        self.cpu_due = 0.0

    def loop_started(self, tasks: Sequence[TaskInfo]) -> None:
        self.row.started(time.monotonic(), time.process_time())

    def loop_ended(self) -> None:
        self.row.cpu(time.process_time())

    def tick(self, now: float) -> None:
        if now >= self.cpu_due:  # a pipeline that never sleeps shows its CPU time too
            self.row.cpu(time.process_time())
            self.cpu_due = now + CPU_PUBLISH

    def sleeping(self) -> None:  # asleep: the moment to publish this process's CPU time
        self.row.cpu(time.process_time())

    def woke(self, slept: float) -> None:
        self.row.slept(slept)

    def queued(self, task: TaskInfo, depth: int, capacity: int) -> None:
        self.tasks[task.order].queue(depth, capacity)

    def call_ended(
        self, task: TaskInfo, started: float, spent: float, items: int, first: int | None
    ) -> None:
        self.tasks[task.order].call(items, spent)

    def emitted(self, task: TaskInfo, items: int) -> None:
        self.tasks[task.order].emitted(items)

    def dead(self, task: TaskInfo) -> None:
        self.tasks[task.order].dead()

    def dropped(self, task: TaskInfo, items: int) -> None:
        self.tasks[task.order].dropped(items)
