"""The cameras benchmark at a tiny scale: it renders and encodes H.264 cameras, runs each
variant at real-time pace, and reports the largest camera count each kept up with."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.apps.benchmark_scripts import benchmark


def test_the_largest_camera_count_each_variant_keeps_up_with(tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("ffmpeg is missing (the Makefile installs it)")
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    bench_cameras = benchmark("bench_cameras")
    out = tmp_path / "cameras.json"
    args = ["--seconds", "4", "--resolution", "360p", "--most", "2", "--data", str(tmp_path)]
    summary = bench_cameras.main([*args, "--json", str(out)])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(summary))
    assert written["decode_ms_per_frame"] > 0 and written["detect_ms_per_frame"] > 0
    trials = written["trials"]
    assert trials, "no trial ran"
    for row in trials:  # every trial says what it measured, and the verdict follows from it
        sent, dropped = row["frames"], row["dropped"]
        assert sent + dropped > 0
        assert abs(row["dropped_share"] - dropped / (sent + dropped)) < 1e-3
        assert row["kept_up"] == (row["dropped_share"] <= bench_cameras.MAX_DROPPED)
    for variant, backend in (("serial", "inline"), ("conveyor", "local")):
        kept = [r["cameras"] for r in trials if r["backend"] == backend and r["kept_up"]]
        assert written[f"cameras_{variant}"] == max(kept, default=0)
    serial = written["cameras_serial"]
    expected = round(written["cameras_conveyor"] / serial, 2) if serial else None
    assert written["cameras_ratio"] == expected
