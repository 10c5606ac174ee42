"""The command line and the demo run as a new user would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conveyor import cli, demo


def test_version_and_clean() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "conveyor.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.startswith("conveyor ")
    assert cli.main(["clean"]) == 0


def test_unknown_arguments_are_refused() -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["clean", "--bogus"])
    assert info.value.code == 2


def test_demo_checks_every_frame_and_reports_rates(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--seconds", "0.5", "--cameras", "1"]) == 0
    text = capsys.readouterr().out
    assert "frames/s" in text and "corrupted frames: 0" in text


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
