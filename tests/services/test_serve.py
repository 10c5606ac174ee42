"""``peopleflow serve`` as a user runs it: a process writing a database, killed and started
again, stopped by a signal, read by ``peopleflow report``."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytest.importorskip("cv2")
pytest.importorskip("trackers")
pytest.importorskip("sqlalchemy")

from peopleflow.database import ResultsDB  # noqa: E402
from peopleflow.generate import StoreParams, generate  # noqa: E402
from tests.stores import cheaper_detector  # noqa: E402

START = "2026-12-01T09:00"
SECONDS = 66  # the store's video: a second minute begun (two windows of a minute)
FRAMES = SECONDS * 2  # each camera's, at 2 fps


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two cameras, eight shoppers, ``SECONDS`` at 2 fps (``FRAMES`` a camera): each of the
    runs below as short as two windows allow (they are most of this file's time)."""
    out = tmp_path_factory.mktemp("store")
    params = StoreParams(cameras=2, shoppers=8, minutes=SECONDS / 60, seed=5)
    config = generate(out, params, progress=None)
    config.write_text(cheaper_detector(config.read_text()))  # the service is tested here
    return config


def _serve(config: Path, db: str, *extra: str, quiet: bool = True) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "peopleflow.cli", "serve", "--config", str(config)]
    cmd += ["--db", db, *(["--quiet"] if quiet else []), "--workers", "2", "--start", START]
    return subprocess.Popen(
        [*cmd, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _copy(store: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the store to change (its configuration), and a database for it."""
    shutil.copytree(store.parent, tmp_path / "store")
    return tmp_path / "store" / "store.toml", f"sqlite:///{tmp_path / 'r.sqlite'}"


@pytest.fixture
def service() -> Iterator[list[subprocess.Popen[str]]]:
    """Services started by a test; killed (with their workers) if the test leaves one."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _batches(db: str) -> int:
    results = ResultsDB.open(db)
    try:
        found = results.batches(results.store_names()[0]) if results.store_names() else []
        return len(found)
    finally:
        results.close()


def _wait_for_batches(db: str, proc: subprocess.Popen[str], at_least: int) -> None:
    deadline = time.monotonic() + 90
    while _batches(db) < at_least:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no results written in 90 s"
        time.sleep(0.2)


def _report(db: str, out: Path, *period: str) -> dict:
    from peopleflow.cli import main

    assert main(["report", "--db", db, "--out", str(out), *period]) == 0
    return dict(json.loads((out / "report.json").read_text()))


def _same(a: dict, b: dict) -> None:
    for key in ("visitors", "zone_dwell_s", "zone_visits", "transitions"):
        assert a[key] == b[key], key


# Three runs of the service over the store, one after another: over the suite's 120 s on a slow
# day of a shared 2-core VM (a CI run of 2026-12-06 timed out at 120 s; the same code passed
# an hour before), so this test has a budget of its own.
@pytest.mark.timeout(300)
def test_killed_and_started_again_it_loses_and_doubles_nothing(
    store: Path, tmp_path: Path, service: list[subprocess.Popen[str]]
) -> None:
    whole = f"sqlite:///{tmp_path / 'whole.sqlite'}"
    service.append(_serve(store, whole))
    out, _ = service[-1].communicate(timeout=120)
    assert service[-1].returncode == 0, out
    assert "cameras ended" in out

    # Killed a third of the way in, in batches (one a wall second at most, so on a fast machine
    # a whole run is few batches, and a fixed count could land after its pipelines ended).
    killed = f"sqlite:///{tmp_path / 'killed.sqlite'}"
    service.append(_serve(store, killed))
    _wait_for_batches(killed, service[-1], at_least=max(2, _batches(whole) // 3))
    workers = [p.pid for p in psutil.Process(service[-1].pid).children(recursive=True)]
    assert workers
    service[-1].send_signal(signal.SIGKILL)
    service[-1].communicate(timeout=30)
    gone, alive = psutil.wait_procs(
        [psutil.Process(p) for p in workers if psutil.pid_exists(p)], timeout=5
    )
    assert not alive, "the workers of a killed service must die with it"

    service.append(_serve(store, killed))
    out, _ = service[-1].communicate(timeout=120)
    assert service[-1].returncode == 0, out

    a, b = _report(whole, tmp_path / "a"), _report(killed, tmp_path / "b")
    _same(a, b)
    assert a["visitors"] >= 4
    frames = (tmp_path / "b" / "camera_frames_by_hour.csv").read_text().splitlines()
    assert frames[1:] == [f"2026-12-01 09:00,{cam},{FRAMES},0,0" for cam in ("cam1", "cam2")]
    results = ResultsDB.open(killed)
    try:
        numbers = [b.batch for b in results.batches(results.store_names()[0])]
        assert numbers == list(range(1, len(numbers) + 1))  # every batch once, in order
        closed = results.closed_windows(results.store_names()[0])
        assert len(closed) == len(set(closed)) == 2  # SECONDS: two windows of a minute
    finally:
        results.close()


def test_sigterm_writes_the_last_results_and_exits_0(
    store: Path, tmp_path: Path, service: list[subprocess.Popen[str]]
) -> None:
    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    service.append(_serve(store, db))
    _wait_for_batches(db, service[-1], at_least=3)
    service[-1].send_signal(signal.SIGTERM)
    out, _ = service[-1].communicate(timeout=60)
    assert service[-1].returncode == 0, out
    assert "stopped after" in out
    results = ResultsDB.open(db)
    try:
        name = results.store_names()[0]
        position = results.resume(name, 0.0, "{}").position
        assert position is not None
        frames = sum(results.frames(name).values())
    finally:
        results.close()
    # Everything up to where it stopped is there; started again, it goes on from there.
    assert 0 < frames < 2 * FRAMES
    service.append(_serve(store, db))
    out, _ = service[-1].communicate(timeout=120)
    assert service[-1].returncode == 0, out
    report = _report(db, tmp_path / "r", "--from", START, "--to", "2026-12-01T10:00")
    assert report["visitors"] >= 4 and report["period"]["windows_with_results"] == 2
    lines = (tmp_path / "r" / "camera_frames_by_hour.csv").read_text().splitlines()
    assert sum(int(line.split(",")[2]) for line in lines[1:]) == 2 * FRAMES


def test_the_command_line_says_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from peopleflow.cli import main

    assert (
        main(["report", "--db", f"sqlite:///{tmp_path / 'empty.sqlite'}", "--out", str(tmp_path)])
        == 2
    )
    assert "holds 0 stores" in capsys.readouterr().err
    assert main(["report", "--db", "sqlite:///x", "--out", str(tmp_path), "--from", "monday"]) == 2
    assert "expected a date" in capsys.readouterr().err
    config = tmp_path / "none.toml"
    assert main(["serve", "--config", str(config)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_sighup_reads_the_store_file_again_and_goes_on(
    store: Path, tmp_path: Path, service: list[subprocess.Popen[str]]
) -> None:
    """A zone added to the file while the service runs, then SIGHUP (what a calibration saved
    on the page sends): the service goes on with the new file, losing and doubling nothing."""
    config, db = _copy(store, tmp_path)
    service.append(_serve(config, db, "--no-web", quiet=False))
    _wait_for_batches(db, service[-1], at_least=4)
    with config.open("a") as f:
        f.write('\n[[zones]]\nname = "added"\npolygon = [[12, 1], [15, 1], [15, 2.5], [12, 2.5]]\n')
    service[-1].send_signal(signal.SIGHUP)
    out, _ = service[-1].communicate(timeout=120)
    assert service[-1].returncode == 0, out
    assert "reading the store file again" in out and "cameras ended" in out
    report = _report(db, tmp_path / "r")
    assert "added" in report["zone_dwell_s"]  # the new file's plan
    frames = (tmp_path / "r" / "camera_frames_by_hour.csv").read_text().splitlines()
    assert frames[1:] == [f"2026-12-01 09:00,{cam},{FRAMES},0,0" for cam in ("cam1", "cam2")]


def test_sighup_with_cameras_changed_adds_and_removes_them_while_the_run_goes_on(
    store: Path, tmp_path: Path, service: list[subprocess.Popen[str]]
) -> None:
    """cam2 removed from the file, SIGHUP: its source ends, cam1 goes on untouched (no restart
    of the run); cam2 put back, SIGHUP: it joins again at the video's current time."""
    config, db = _copy(store, tmp_path)
    # The report's identities said: its default depends on the camera count (one: "live").
    text = config.read_text().replace("[store]\n", '[store]\nidentities = "relinked"\n')
    config.write_text(text)
    cam2 = text[text.index('[[cameras]]\nname = "cam2"') :]
    service.append(_serve(config, db, "--no-web", quiet=False))
    _wait_for_batches(db, service[-1], at_least=2)
    config.write_text(text.replace(cam2, ""))
    service[-1].send_signal(signal.SIGHUP)
    time.sleep(1.0)  # away for a second (the video goes on at a few times real time)
    config.write_text(text)
    service[-1].send_signal(signal.SIGHUP)
    out, _ = service[-1].communicate(timeout=120)
    assert service[-1].returncode == 0, out
    assert "cameras changed: -cam2" in out and "cameras changed: +cam2" in out, out
    assert "reading the store file again" not in out  # the run was never started again
    _report(db, tmp_path / "r")
    frames = (tmp_path / "r" / "camera_frames_by_hour.csv").read_text().splitlines()
    counts = {line.split(",")[1]: int(line.split(",")[2]) for line in frames[1:]}
    assert counts["cam1"] == FRAMES  # every frame of the camera that stayed
    assert 0 < counts["cam2"] < FRAMES, counts  # away for a while
