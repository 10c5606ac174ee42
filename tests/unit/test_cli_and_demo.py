"""The command line and the demo run as a new user would run them."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import cli


def test_unknown_arguments_are_refused() -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["clean", "--bogus"])
    assert info.value.code == 2


def test_plan_and_run_an_example_graph(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", "examples/hello.py:graph", "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "p0-cpu" in text and "brightness" in text and "channels between pipelines" in text
    assert cli.main(["run", "examples/hello.py:graph", "--backend", "inline"]) == 0
    text = capsys.readouterr().out
    assert "cam-3 frame  75" in text and "done: inline backend" in text


def test_plan_is_drawn_as_png_and_dot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png, dot = tmp_path / "plan.png", tmp_path / "plan.dot"
    args = ["plan", "examples/hello.py:graph", "--workers", "2", "--png", str(png)]
    assert cli.main([*args, "--dot", str(dot)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "subgraph cluster_0" in dot.read_text() and f"wrote {png}" in capsys.readouterr().out


def test_bad_graph_reference_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", "examples/hello.py"]) == 2
    assert "expected MODULE:GRAPH" in capsys.readouterr().err
    assert cli.main(["plan", "examples/hello.py:nothing"]) == 2
    assert "has no 'nothing'" in capsys.readouterr().err


def test_run_shows_a_dashboard_serves_metrics_and_writes_a_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.json"
    args = ["run", "examples/hello.py:graph", "--workers", "2", "--metrics-port", "0"]
    assert cli.main([*args, "--trace", str(trace)]) == 0
    captured = capsys.readouterr()
    assert "metrics: http://127.0.0.1:" in captured.out
    assert f"wrote the trace {trace}" in captured.out and trace.stat().st_size > 0
    assert "400 source items" in captured.err and "brightness" in captured.err  # the dashboard
    assert cli.main(["run", "examples/hello.py:graph", "--backend", "inline", "--quiet"]) == 0
    assert "source items" not in capsys.readouterr().err


def test_a_bottleneck_is_named_with_the_plan_that_measurements_would_give() -> None:
    import conveyor as cv
    from conveyor.plan import make_plan

    graph = cli.load_graph("examples/hello.py:graph")
    plan = make_plan(graph, workers=2)
    costs = {"cameras": 0.0001, "brightness": 0.02, "Smooth": 0.00001, "report": 0.00001}
    tasks = {
        n: cv.TaskStats(n, 100, 100, 100, 0, c * 100, 1.0, c, c, c, 0, 64, 1)
        for n, c in costs.items()
    }
    busy = plan.pipeline_of("brightness")
    pipes = tuple(
        cv.PipelineStats(p.index, p.name, p.tasks, 0.97 if p.index == busy else 0.1, 1.0, 0, 0, 0)
        for p in plan.pipelines
    )
    advice = cli.bottleneck_advice(plan, cv.Stats(2.0, tasks, pipes, ("cameras",)))
    assert advice.startswith(f"bottleneck: pipeline p{busy}-cpu was busy 97%")
    assert "plan.replan(stats)" in advice and "brightness#1" in advice  # split into replicas
