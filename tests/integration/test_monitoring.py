"""Watching a run: the dashboard, the Prometheus endpoint, the trace and its report, replan."""

from __future__ import annotations

import io
import json
import re
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

import conveyor as cv
from conveyor.cli import main as conveyor_main
from conveyor.monitor.report import busy_over_time, load_trace
from tests.integration.pipeline_fixtures import Smooth, frames, measure, paced_frames

ITEMS = 120


def test_dashboard_prints_plain_lines_and_a_final_table_when_output_is_not_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=120)
    dashboard = cv.Dashboard(console=console, log_every=0.0, cameras=3)
    seen: list[cv.Stats] = []
    graph = cv.Graph([paced_frames, measure, Smooth])
    cv.run(graph, backend="local", workers=2, watch=[dashboard, seen.append], watch_every=0.05)
    text = out.getvalue()
    assert "\x1b[" not in text  # no terminal control codes in a log file
    lines = [line for line in text.splitlines() if line.startswith("conveyor:")]
    assert len(lines) >= 2, text  # periodic lines while it ran, not only at the end
    assert f"{ITEMS} source items" in lines[-1] and "per camera" in lines[-1]
    for name in ("p0-cpu", "p1-cpu", "paced_frames", "measure", "Smooth"):
        assert name in text
    # Snapshots while it ran grow, and the last one is the finished run's.
    counts = [s.source_items for s in seen]
    assert counts == sorted(counts) and counts[-1] == ITEMS and counts[0] < ITEMS


def test_dashboard_redraws_in_a_terminal_without_error() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    dashboard = cv.Dashboard(console=console)
    graph = cv.Graph([paced_frames, measure, Smooth])
    result = cv.run(graph, backend="inline", watch=[dashboard], watch_every=0.02)
    assert result.stats is not None
    assert "measure" in out.getvalue() and "\x1b[" in out.getvalue()  # drawn live, coloured
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue())
    assert f"{ITEMS} source items" in plain


def test_prometheus_endpoint_is_scraped_over_loopback_while_the_run_goes_on() -> None:
    server = cv.MetricsServer(0)  # a free port, on 127.0.0.1
    assert server.host == "127.0.0.1" and server.port > 0
    scraped: list[str] = []

    def scrape(stats: cv.Stats) -> None:
        if not scraped and stats.source_items > 0:
            with urllib.request.urlopen(server.url, timeout=5) as response:
                scraped.append(response.read().decode())

    graph = cv.Graph([paced_frames, measure, Smooth])
    result = cv.run(graph, backend="local", workers=2, watch=[server, scrape], watch_every=0.05)
    assert scraped, "no scrape happened during the run"
    body = scraped[0]
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in body.splitlines()
        if line and not line.startswith("#")
    }
    took = values['conveyor_task_items_in_total{task="measure"}']
    assert 0 <= took <= ITEMS
    assert 'conveyor_pipeline_busy_ratio{pipeline="p0-cpu"}' in values
    assert 'conveyor_task_latency_seconds{quantile="0.99",task="measure"}' in values
    assert result.stats is not None and result.stats.tasks["measure"].items_in == ITEMS
    with pytest.raises(OSError):  # the run closed it
        urllib.request.urlopen(server.url, timeout=2)


def test_a_taken_port_is_a_clear_error() -> None:
    first = cv.MetricsServer(0)
    try:
        with pytest.raises(cv.ConfigurationError, match="cannot serve metrics"):
            cv.MetricsServer(first.port)
    finally:
        first.close()


def test_an_observer_that_raises_is_dropped_and_the_run_goes_on(capfd) -> None:
    def broken(stats: cv.Stats) -> None:
        raise RuntimeError("observer bug")

    graph = cv.Graph([frames, measure, Smooth])
    result = cv.run(graph, backend="inline", collect=["Smooth"], watch=[broken])
    assert len(result.outputs["Smooth"]) == ITEMS
    assert "observer bug" in capfd.readouterr().err


def test_trace_has_one_track_per_pipeline_and_a_slice_per_task_call(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    graph = cv.Graph([frames, measure, Smooth])
    result = cv.run(graph, backend="local", workers=2, trace=path)
    assert result.trace == path and result.stats is not None and result.plan is not None
    events = json.loads(path.read_text())["traceEvents"]  # valid JSON, Chrome trace format
    tracks = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert tracks == {p.index: p.name for p in result.plan.pipelines}
    slices = [e for e in events if e["ph"] == "X"]
    per_task = Counter(e["name"] for e in slices)
    for name, task in result.stats.tasks.items():
        assert per_task[name] == task.calls, name
    where = result.plan.placement()
    assert all(e["pid"] in where[e["name"]] for e in slices)  # on its pipeline's track
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in slices)
    assert sum(e["args"]["batch"] for e in slices if e["name"] == "measure") == ITEMS
    assert any(e["ph"] == "C" and e["name"] == "queue measure" for e in events)
    assert not list(tmp_path.glob("*.jsonl"))  # the parts were merged and removed

    report = tmp_path / "report"
    assert conveyor_main(["report", str(path), "--out", str(report)]) == 0
    for png in ("busy.png", "queues.png", "timeline.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trace = load_trace(path)
    assert set(trace.pipelines.values()) == {p.name for p in result.plan.pipelines}


def test_inline_runs_are_traced_on_one_track(tmp_path: Path) -> None:
    graph = cv.Graph([frames, measure, Smooth])
    result = cv.run(graph, backend="inline", trace=tmp_path / "t.json")
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    assert {e["pid"] for e in events} == {0}
    assert result.stats is not None
    assert sum(e["ph"] == "X" for e in events) == sum(t.calls for t in result.stats.tasks.values())


def test_busy_fraction_of_time_bins() -> None:
    import numpy as np

    edges = np.array([0.0, 1.0, 2.0, 3.0])
    calls = [("a", 0.5, 1.0), ("b", 2.0, 0.25)]  # half of bin 0, half of bin 1, a quarter of 2
    assert busy_over_time(calls, edges).tolist() == [0.5, 0.5, 0.25]


def test_report_of_a_file_that_is_not_a_trace_is_a_clear_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert conveyor_main(["report", str(bad), "--out", str(tmp_path)]) == 2
    assert "is not a conveyor trace file" in capsys.readouterr().err


def test_a_trace_that_cannot_be_written_warns_and_the_run_still_cleans_up(
    tmp_path: Path, capfd
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    graph = cv.Graph([frames, measure, Smooth])
    result = cv.run(graph, backend="local", workers=2, trace=blocker / "run.json")
    assert result.stats is not None and result.stats.tasks["Smooth"].items_in == ITEMS
    assert "could not be written" in capfd.readouterr().err  # (no leaks: the conftest checks)
