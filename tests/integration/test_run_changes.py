"""Cameras added and removed while a run goes on (``conveyor.start``): no other camera's work
changes, nothing a removed camera yielded is lost, gathers learn the new set of cameras."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil
import pytest

import conveyor as cv
from tests.integration.change_fixtures import (
    InOrder,
    Seen,
    camera,
    look,
    spec,
    stray,
    together,
)


class Outputs:
    """What the run's ``InOrder`` and ``together`` sent, as it comes (on the run's thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, list[Seen]] = defaultdict(list)
        self.instants: list[list[str]] = []

    def take_seen(self, s: Seen) -> None:
        with self.lock:
            self.seen[s.camera].append(s)

    def take_instant(self, i: object) -> None:
        with self.lock:
            self.instants.append(i.cameras)  # type: ignore[attr-defined]

    def count(self, cam: str) -> int:
        with self.lock:
            return len(self.seen[cam])

    def wait_for(self, cam: str, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(cam) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"camera {cam}: {self.count(cam)} items, {n} awaited")
            time.sleep(0.02)


def test_cameras_added_and_removed_while_the_run_goes_on(tmp_path: Path) -> None:
    out = Outputs()
    graph = cv.Graph([camera("a", tmp_path), camera("b", tmp_path), look, InOrder, together])
    run = cv.start(
        graph,
        workers=2,
        cameras=[spec("a"), spec("b")],
        on_output={"InOrder": out.take_seen, "together": out.take_instant},
    )
    with run:
        out.wait_for("b", 20)
        assert sorted(run.sources()) == ["cam[a]", "cam[b]"]
        # A camera the run was not started with, with a frame store of its own.
        assert run.add_source(camera("c", tmp_path), cameras=[spec("c")]) == "cam[c]"
        out.wait_for("c", 20)
        run.remove_source("cam[a]")
        a_left = out.count("a")
        b_then, c_then = out.count("b"), out.count("c")
        out.wait_for("c", c_then + 30)
        out.wait_for("b", b_then + 30)
        assert sorted(run.sources()) == ["cam[b]", "cam[c]"]
        # Refused, with what to do instead:
        with pytest.raises(cv.ConfigurationError, match="name of its own"):
            run.add_source(camera("a", tmp_path))
        with pytest.raises(cv.ConfigurationError, match="not a source of the run"):
            run.remove_source("cam[zz]")
        with pytest.raises(cv.ConfigurationError, match="takes a source"):
            run.add_source(look)
        with pytest.raises(cv.ConfigurationError, match="no task of the run takes"):
            run.add_source(stray)
        result = run.stop()
    assert not run.running
    assert result.restarts == []
    with pytest.raises(cv.RunStopped):
        run.add_source(camera("d", tmp_path))
    for cam in "abc":
        got = out.seen[cam]
        # In order and whole (InOrder fails the run otherwise), each with its own frame.
        assert [s.index for s in got] == list(range(len(got)))
        assert all(s.pixel == s.index % 256 for s in got)
        yielded = int((tmp_path / f"{cam}.count").read_text())
        # Everything yielded got through; a camera read in a thread may have been reading
        # one more item when it was removed, which is let go.
        assert yielded - 1 <= len(got) <= yielded, (cam, yielded, len(got))
    # a stopped when removed (what was in flight came), while b and c sent 30 more each
    assert out.count("a") - a_left <= 10
    # The gather learnt the new set: instants of b and c together, and none waits for a.
    assert any(cams == ["b", "c"] for cams in out.instants)
    late = out.instants[-20:]
    assert all("a" not in cams for cams in late)
    assert sum(cams == ["b", "c"] for cams in late) >= 10, late


def test_a_started_run_ends_by_itself_when_its_sources_end(tmp_path: Path) -> None:
    from tests.integration.change_fixtures import Ticker

    graph = cv.Graph(
        [cv.bind(Ticker, "a", str(tmp_path / "a.count"), 25).named("cam[a]"), look, InOrder]
    )
    run = cv.start(graph, workers=1, cameras=[spec("a")], collect=["InOrder"])
    result = run.wait(timeout=60)
    assert [s.index for s in result.outputs["InOrder"]] == list(range(25))
    assert not run.running
    with pytest.raises(cv.ConfigurationError, match="collect"):
        cv.start(graph, collect=["nope"])


def _pipeline(index: int) -> psutil.Process:
    """The run's pipeline process ``conveyor-p<index>`` (a child of this one)."""
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.name() == f"conveyor-p{index}":
                return p
    raise AssertionError(f"no process conveyor-p{index}")


def test_a_pipeline_killed_after_a_change_starts_again_with_it(tmp_path: Path) -> None:
    """Each pipeline is SIGKILLed after a camera was added: the replacements keep the added
    camera's ring (and it keeps its frame store); nothing is lost or doubled."""
    out = Outputs()
    graph = cv.Graph([camera("a", tmp_path), camera("b", tmp_path), look])
    with cv.start(
        graph, workers=2, cameras=[spec("a"), spec("b")], on_output={"look": out.take_seen}
    ) as run:
        out.wait_for("b", 10)
        run.add_source(camera("c", tmp_path), cameras=[spec("c")])
        out.wait_for("c", 10)
        for index in (0, 1, 2):  # the two planned pipelines, then the added camera's
            _pipeline(index).kill()
            for cam in "bc":
                out.wait_for(cam, out.count(cam) + 15)
        run.remove_source("cam[a]")
        out.wait_for("c", out.count("c") + 10)
        result = run.stop()
    assert len(result.restarts) == 3
    for cam in "abc":
        got = sorted(s.index for s in out.seen[cam])
        assert got == list(range(len(got))), cam  # no item lost, none doubled
        assert all(s.pixel == s.index % 256 for s in out.seen[cam])
