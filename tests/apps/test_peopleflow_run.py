"""The people-flow application end to end on a tiny generated store: both backends, a broken
camera, the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("trackers")

from peopleflow.app import run_store  # noqa: E402
from peopleflow.cli import main  # noqa: E402
from peopleflow.config import load_config  # noqa: E402
from peopleflow.generate import StoreParams, generate, load_truth  # noqa: E402
from tests.stores import cheaper_detector  # noqa: E402

SECONDS = 24.0


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two cameras, six shoppers, 24 s at 2 fps."""
    out = tmp_path_factory.mktemp("store")
    config = generate(
        out, StoreParams(cameras=2, shoppers=6, minutes=SECONDS / 60, seed=4), progress=None
    )
    config.write_text(cheaper_detector(config.read_text()))
    return config


def test_generating_twice_reuses_the_store(store: Path) -> None:
    lines: list[str] = []
    again = generate(
        store.parent,
        StoreParams(cameras=2, shoppers=6, minutes=SECONDS / 60, seed=4),
        progress=lines.append,
    )
    assert again == store and "reusing" in lines[0]
    cfg = load_config(store)
    assert [c.name for c in cfg.cameras] == ["cam1", "cam2"]
    truth, boxes = load_truth(store.parent / "truth.npz")
    assert len(truth) == 6 and set(boxes) == {"cam1", "cam2"}


def test_the_inline_and_local_runs_agree_and_write_the_outputs(store: Path, tmp_path: Path) -> None:
    inline = run_store(store, tmp_path / "inline", backend="inline", progress=False)
    local = run_store(store, tmp_path / "local", backend="local", workers=2, progress=False)
    assert inline.frames == local.frames == 2 * SECONDS * 2
    # Every instant has both cameras, once: files wait for each other at the gather.
    indices = [int(i.index) for i in local.instants]
    assert len(indices) == len(set(indices)) == SECONDS * 2
    assert all(int(i.cameras) == 2 for i in local.instants)
    # The same frames through the same deterministic stages: the same people and places.
    assert [t.id for t in inline.tracks] == [t.id for t in local.tracks]
    for a, b in zip(inline.tracks, local.tracks, strict=True):
        assert (a.t == b.t).all() and abs(a.xy - b.xy).max() < 1e-6
    for name in ("heatmap.png", "flowmap.png", "report.json", "zones.csv", "tracks.csv"):
        assert (tmp_path / "local" / name).stat().st_size > 100, name
    assert (tmp_path / "local" / "transitions.csv").read_text().startswith("from,to,count")
    zones_csv = (tmp_path / "local" / "zones.csv").read_text()
    assert zones_csv.startswith("zone,dwell_seconds,visits,in_view_share")
    report = json.loads((tmp_path / "local" / "report.json").read_text())
    assert report["visitors"] == local.report.visitors >= 1
    assert report["speed"]["frames"] == local.frames
    # Each zone's share in view (two of the store's cameras: some zones are out of view).
    in_view = report["zone_in_view_share"]
    assert set(in_view) == set(local.report.zone_dwell)
    assert all(0 <= v <= 1 for v in in_view.values()) and max(in_view.values()) > 0.5
    # Where the pipeline puts people is where they were: most placed points lie within 0.75 m
    # of a true shopper at that instant (the demo measures the store-wide accuracy).
    truth, _ = load_truth(store.parent / "truth.npz")
    near = total = 0
    for track in local.tracks:
        for t, xy in zip(track.t, track.xy, strict=True):
            here = [tr.xy[abs(tr.t - t) < 1e-6] for tr in truth]
            gaps = [float(np.linalg.norm(p[0] - xy)) for p in here if len(p)]
            near += bool(gaps) and min(gaps) < 0.75
            total += 1
    assert total > 20 and near / total > 0.8, (near, total)


def test_instants_wait_for_every_file_camera_but_not_for_a_live_one(store: Path) -> None:
    """Below files an instant waits for its last camera however busy the pipelines are (with
    the live cameras' 2 s, a busy run's instants went out with 1-5 of 6 cameras, the rest
    coming later as instants of their own); below live cameras it does not."""
    from peopleflow import pipeline

    cfg = load_config(store)

    def gather_wait(settings: pipeline.RunSettings) -> float:
        graph = pipeline.graph_for(settings)
        return graph.tasks["Associate"].max_wait

    files = pipeline.RunSettings(cfg)
    assert gather_wait(files) == pipeline.FILE_GATHER_WAIT >= 30
    assert gather_wait(pipeline.RunSettings(cfg, realtime=True)) == pipeline.LIVE_GATHER_WAIT
    import dataclasses

    live_cam = dataclasses.replace(cfg.cameras[0], source="rtsp://127.0.0.1:8554/cam1")
    live = dataclasses.replace(cfg, cameras=(live_cam, *cfg.cameras[1:]))
    assert gather_wait(pipeline.RunSettings(live)) == pipeline.LIVE_GATHER_WAIT


def test_a_broken_camera_is_reported_and_the_others_go_on(store: Path, tmp_path: Path) -> None:
    broken = tmp_path / "store"
    shutil.copytree(store.parent, broken)
    (broken / "videos" / "cam2.mp4").write_bytes(b"not a video")
    summary = run_store(broken / "store.toml", None, backend="inline", seconds=5, progress=False)
    assert set(summary.failed_cameras) == {"cam2"}
    assert "cannot open" in summary.failed_cameras["cam2"]
    assert summary.cameras == 1 and summary.frames == 10


def test_the_command_line_says_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(tmp_path / "none.toml"), "--out", str(tmp_path)]) == 2
    assert "none.toml does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "[store]\nfloor = { width = 10, height = 8 }\n"
        '[[zones]]\nname = "z"\npolygon = [[0, 0], [2, 0], [2, 2]]\n'
        '[[cameras]]\nname = "a"\n'
        'source = "rtsp://10.0.0.1/x"\nfps = 2\n'
        "calibration = [[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2], [0, 5, 0, 3]]\n"
    )
    assert main(["run", "--config", str(bad), "--out", str(tmp_path)]) == 2
    assert "cameras[0].calibration" in capsys.readouterr().err


def test_starting_the_service_does_not_import_what_only_a_worker_or_a_map_needs() -> None:
    """What the service's process imports before it can spawn its pipelines is on the path of
    every start and restart (2-3 s of the 8-9 s to its first results on a 2-core VM, before
    these were left out), and a pipeline process imports the command line's module again as
    multiprocessing's main."""
    import subprocess
    import sys

    code = (  # one interpreter: the CLI's module first (what a pipeline process imports)
        "import sys, peopleflow.cli; print('sqlalchemy' in sys.modules); "
        "import peopleflow.serve; "
        "print(sorted(m for m in ('supervision', 'matplotlib', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    cli_alone, with_serve = out.stdout.strip().splitlines()
    assert cli_alone == "False", out.stdout
    assert with_serve == "[]", out.stdout


def test_a_killed_camera_source_resumes_by_seeking_and_changes_nothing(
    store: Path, tmp_path: Path
) -> None:
    """The pipeline of the first camera's source is SIGKILLed at its 15th frame: restarted,
    the camera seeks past the frames done (``Frames.resume``) and the run's people equal an
    unbroken run's."""
    from conveyor.testing import Fault, inject

    calm = run_store(store, None, backend="local", workers=2, seconds=12, progress=False)
    with inject(Fault("Frames[cam1]", item=15, mode="kill")):
        broken = run_store(store, None, backend="local", workers=2, seconds=12, progress=False)
    assert broken.restarts == 1 and calm.restarts == 0
    assert broken.frames == calm.frames == 2 * 12 * 2
    assert [t.id for t in broken.tracks] == [t.id for t in calm.tracks]
    for a, b in zip(calm.tracks, broken.tracks, strict=True):
        assert (a.t == b.t).all() and abs(a.xy - b.xy).max() < 1e-6
