"""The basic tests that start processes (the CLI in a subprocess, the transport demo, a
ring's second producer, statistics of the local backend): out of ``tests/unit``, which starts
none and runs in seconds (``make test-fast``)."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys

import pytest

import conveyor as cv
from conveyor import cli, demo
from conveyor.transport import Ring
from tests.integration import children
from tests.unit.test_stats import frames, measure
from tests.unit.test_stats import (
    test_counters_equal_the_known_item_counts_of_a_deterministic_graph as counters_test,
)


def test_version_and_clean() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "conveyor.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.startswith("conveyor ")
    assert cli.main(["clean"]) == 0


def test_demo_checks_every_frame_and_reports_rates(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--seconds", "0.5", "--cameras", "1"]) == 0
    text = capsys.readouterr().out
    assert "frames/s" in text and "corrupted frames: 0" in text


def test_a_second_live_producer_is_refused() -> None:
    with Ring(capacity=64 * 1024) as ring:
        ring.writer()
        ctx = mp.get_context("spawn")
        parent_end, child_end = ctx.Pipe()
        p = ctx.Process(target=children.try_second_writer, args=(ring.name, child_end))
        p.start()
        try:
            assert parent_end.poll(30)
            assert "already has a live producer" in parent_end.recv()
        finally:
            p.join(10)


def test_counters_equal_the_known_item_counts_on_processes() -> None:
    counters_test("local")


def test_statistics_can_be_switched_off_on_processes() -> None:
    graph = cv.Graph([frames, measure])
    assert cv.run(graph, backend="local", workers=2, stats=False).stats is None
