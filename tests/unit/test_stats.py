"""Statistics: counters in shared memory, read back as ``RunResult.stats``."""

from __future__ import annotations

import math

import pytest

import conveyor as cv
from conveyor.monitor.counters import FIRST_BUCKET, Counters, bucket, percentile
from tests.integration.pipeline_fixtures import fails_at_17, frames, measure

ITEMS = 40 * 3  # the fixture's frames: 40 instants of 3 cameras


def test_call_durations_fall_in_power_of_two_buckets_and_give_percentiles() -> None:
    assert bucket(0.0) == 0 and bucket(FIRST_BUCKET) == 0
    assert bucket(FIRST_BUCKET * 1.5) == 1 and bucket(FIRST_BUCKET * 4) == 2
    assert bucket(1e9) == len(range(28)) - 1  # the last bucket holds everything slower
    hist = [0] * 28
    for seconds, n in ((0.001, 90), (0.1, 9), (1.0, 1)):
        hist[bucket(seconds)] += n
    assert percentile(hist, 50) == pytest.approx(FIRST_BUCKET * 2 ** bucket(0.001))
    p50, p90, p99 = (percentile(hist, q) for q in (50, 90, 99))
    assert 0.001 <= p50 < 0.002 and 0.1 <= p99 < 0.2 and p90 <= p99
    assert percentile([0] * 28, 50) == 0.0


def test_rows_written_in_one_table_are_read_back_through_another_attached_by_name() -> None:
    table = Counters.create(pipelines=2, tasks=3)
    try:
        row = table.task_row(1, 2)
        row.call(4, 0.003)
        row.call(2, 0.001)
        row.emitted(5)
        row.dead()
        row.queue(7, 64)
        other = Counters.attach(table.name or "", 2, 3)
        try:
            raw = other.read_task(1, 2)
            assert (raw.calls, raw.items_in, raw.items_out, raw.dead) == (2, 6, 5, 1)
            assert (raw.queue, raw.capacity) == (7, 64)
            assert math.isclose(raw.busy, 0.004) and sum(raw.histogram) == 2
            assert other.read_task(0, 2).calls == 0  # rows do not overlap
            assert other.read_task(1, 1).calls == 0
        finally:
            other.close()
    finally:
        table.close()


def test_a_bottleneck_is_one_pipeline_clearly_busier_than_the_rest() -> None:
    def stats(*busy: float) -> cv.Stats:
        pipes = tuple(
            cv.PipelineStats(i, f"p{i}-cpu", (), b, b, 0, 0.0, 0) for i, b in enumerate(busy)
        )
        return cv.Stats(10.0, {}, pipes)

    assert stats(0.95, 0.4).bottleneck is not None and stats(0.95, 0.4).bottleneck.index == 0
    assert stats(0.95, 0.9).bottleneck is None and stats(0.95, 0.9).saturated  # all busy
    assert stats(0.5, 0.4).bottleneck is None and not stats(0.5, 0.4).saturated
    assert stats(0.9).bottleneck is not None  # one pipeline (inline) holds itself up


def test_counters_equal_the_known_item_counts_of_a_deterministic_graph(
    backend: str = "inline",
) -> None:
    """Inline here; ``tests/integration/test_basics_in_processes.py`` runs it on processes."""
    graph = cv.Graph([frames, measure, fails_at_17])
    result = cv.run(graph, backend=backend, workers=2, collect=["fails_at_17"])
    stats = result.stats
    assert stats is not None and stats.elapsed > 0
    src, batch, fails = stats.tasks["frames"], stats.tasks["measure"], stats.tasks["fails_at_17"]
    assert src.items_out == ITEMS
    assert batch.items_in == ITEMS and batch.items_out == ITEMS
    assert 1 <= batch.mean_batch <= 4 and batch.calls == math.ceil(ITEMS / batch.mean_batch)
    assert fails.items_in == ITEMS and fails.calls == ITEMS
    assert fails.dead_letters == 3 == len(result.dead_letters)  # index 17 of 3 cameras
    assert fails.items_out == ITEMS - 3 == len(result.outputs["fails_at_17"])
    for t in stats.tasks.values():
        assert 0 < t.p50 <= t.p90 <= t.p99 and t.busy > 0
    assert sum(len(p.tasks) for p in stats.pipelines) >= 3
    for p in stats.pipelines:
        assert 0 <= p.busy <= 1
    if backend == "local":
        assert all(p.cpu > 0 for p in stats.pipelines)
    assert stats.throughput("measure") == pytest.approx(ITEMS / stats.elapsed)


def test_statistics_can_be_switched_off() -> None:
    graph = cv.Graph([frames, measure])
    assert cv.run(graph, backend="inline", stats=False).stats is None


def test_a_live_source_s_dropped_frames_reach_the_statistics_and_the_dashboard(
    backend: str = "inline",
) -> None:
    """Inline here; ``tests/integration/test_local_backend.py`` runs it on processes."""
    from rich.console import Console

    from tests.integration.pipeline_fixtures import LiveCamera, where

    graph = cv.Graph([LiveCamera, where])
    stats = cv.run(graph, backend=backend, workers=2).stats
    assert stats is not None
    # read after each of the 30 items (the two let go after the last one are never seen)
    assert stats.tasks["LiveCamera"].dropped == 2 * 29 == stats.dropped
    assert stats.tasks["where"].dropped == 0
    console = Console(width=160, record=True)
    console.print(cv.Dashboard().render(stats))
    text = console.export_text()
    assert ", dropped 58" in text.splitlines()[0]
    header = next(line for line in text.splitlines() if "items/s" in line)
    assert "dropped" in header
