"""A frozen snapshot of a run's counters: what each task and each pipeline did.

``snapshot`` turns the raw rows of ``monitor.counters`` into per-task throughput, latency
percentiles, batch sizes and queue depths, and per-pipeline busy and CPU fractions. It is
what ``RunResult.stats`` holds, and what a dashboard or an exporter reads while a run goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from conveyor.monitor.counters import Counters, RawTask, percentile

BUSY = 0.8  # a pipeline in task code more than this fraction of the time is busy
AHEAD = 0.15  # a bottleneck is busier than every other pipeline by this much


@dataclass(frozen=True)
class TaskStats:
    name: str
    calls: int
    items_in: int
    items_out: int
    dead_letters: int
    busy: float  # seconds in the task's own code, all replicas together
    mean_batch: float  # items per call
    p50: float  # seconds per call (the top of the histogram bucket holding it)
    p90: float
    p99: float
    queue: int  # items waiting at its inputs, as last written (all replicas)
    capacity: int  # room of those inputs
    replicas: int
    dropped: int = 0  # a source's items let go unsent (its ``dropped``: see ``conveyor.source``)

    @property
    def congestion(self) -> float:
        """How full its input queues are, 0 to 1."""
        return self.queue / self.capacity if self.capacity else 0.0


@dataclass(frozen=True)
class PipelineStats:
    index: int
    name: str  # as the plan names it (``p0-cpu``)
    tasks: tuple[str, ...]
    busy: float  # fraction of the wall time spent in task code
    cpu: float  # CPU seconds per wall second of the process (can pass 1 with threads)
    sleeps: int
    slept: float  # seconds asleep, waiting for input
    restarts: int  # replacement processes started after a crash or a hang


@dataclass(frozen=True)
class Stats:
    elapsed: float  # wall seconds the snapshot covers
    tasks: dict[str, TaskStats] = field(default_factory=dict)
    pipelines: tuple[PipelineStats, ...] = ()
    sources: tuple[str, ...] = ()  # the source tasks: what enters the graph

    def throughput(self, task: str) -> float:
        """Items per second the task finished over the run (a source: items produced)."""
        return self.tasks[task].items_in / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def source_items(self) -> int:
        """Items the sources produced so far (frames, for a graph of cameras)."""
        return sum(self.tasks[s].items_in for s in self.sources if s in self.tasks)

    @property
    def restarts(self) -> int:
        return sum(p.restarts for p in self.pipelines)

    @property
    def dead_letters(self) -> int:
        return sum(t.dead_letters for t in self.tasks.values())

    @property
    def dropped(self) -> int:
        """Items the sources let go unsent: live cameras behind real time."""
        return sum(t.dropped for t in self.tasks.values())

    @property
    def bottleneck(self) -> PipelineStats | None:
        """The busiest pipeline, if it holds the others up: busy over 80% of the time while
        every other pipeline is at least 15 points less busy. None when all are about as busy
        (then the machine's processors are the limit, not the placement: see ``saturated``)."""
        ranked = sorted(self.pipelines, key=lambda p: -p.busy)
        if not ranked or ranked[0].busy <= BUSY:
            return None
        if len(ranked) > 1 and ranked[1].busy > ranked[0].busy - AHEAD:
            return None
        return ranked[0]

    @property
    def saturated(self) -> bool:
        """Every pipeline busy over 80% of the time: more processors would help, not a new
        placement."""
        return bool(self.pipelines) and all(p.busy > BUSY for p in self.pipelines)


class RunStats:
    """Snapshots of one run's counter table, its placement fixed, timed from when it is made:
    the live view (``monitor.live``) and the finished run's statistics read it the same way."""

    def __init__(
        self,
        counters: Counters,
        order: list[str],
        placement: list[list[str]],
        names: list[str],
        sources: tuple[str, ...],
    ) -> None:
        self.counters, self.order, self.placement = counters, order, placement
        self.names, self.sources = names, sources
        self.start = time.monotonic()

    def __call__(self, elapsed: float | None = None) -> Stats:
        """The snapshot now, over ``elapsed`` seconds (default: since this was made)."""
        seconds = time.monotonic() - self.start if elapsed is None else elapsed
        return snapshot(
            self.counters, self.order, self.placement, seconds, self.names, self.sources
        )


def snapshot(
    counters: Counters,
    order: list[str],
    placement: list[list[str]],
    elapsed: float,
    names: list[str] | None = None,
    sources: tuple[str, ...] = (),
) -> Stats:
    """Stats from ``counters`` for tasks in graph ``order``, placed as ``placement`` (the
    tasks of each pipeline, named ``names``), over ``elapsed`` wall seconds."""
    rows: dict[str, list[RawTask]] = {n: [] for n in order}
    busy = [0.0] * len(placement)  # per pipeline: seconds in its tasks' code
    index = {n: i for i, n in enumerate(order)}
    for p, members in enumerate(placement):
        for n in members:
            raw = counters.read_task(p, index[n])
            rows[n].append(raw)
            busy[p] += raw.busy
    tasks = {}
    for n in order:
        rs = rows[n]
        if not rs:
            continue
        hist = [sum(col) for col in zip(*(r.histogram for r in rs), strict=True)]
        calls = sum(r.calls for r in rs)
        items = sum(r.items_in for r in rs)
        tasks[n] = TaskStats(
            name=n,
            calls=calls,
            items_in=items,
            items_out=sum(r.items_out for r in rs),
            dead_letters=sum(r.dead for r in rs),
            dropped=sum(r.dropped for r in rs),
            busy=sum(r.busy for r in rs),
            mean_batch=items / calls if calls else 0.0,
            p50=percentile(hist, 50),
            p90=percentile(hist, 90),
            p99=percentile(hist, 99),
            queue=sum(r.queue for r in rs),
            capacity=sum(r.capacity for r in rs),
            replicas=len(rs),
        )
    pipelines = []
    for p, members in enumerate(placement):
        own = counters.read_pipeline(p)
        pipelines.append(
            PipelineStats(
                index=p,
                name=names[p] if names else f"p{p}",
                tasks=tuple(members),
                busy=min(1.0, busy[p] / elapsed) if elapsed > 0 else 0.0,
                cpu=own.cpu / elapsed if elapsed > 0 else 0.0,
                sleeps=own.sleeps,
                slept=own.slept,
                restarts=max(0, own.starts - 1),
            )
        )
    return Stats(elapsed, tasks, tuple(pipelines), sources)
