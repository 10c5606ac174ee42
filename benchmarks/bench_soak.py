"""Soak: `peopleflow serve` on a generated store looped for M minutes of video, at the pace the
machine allows, optionally SIGKILLed every S seconds and started again.

    python benchmarks/bench_soak.py --minutes 60 [--kill-every 120] [--cameras 2] [--fps 1]
                                    [--json out/bench_soak.json]

The store (2 minutes of video, generated once) is looped to M minutes with ffmpeg (stream
copy, cached). The service writes to a new SQLite database; its memory (the service and its
pipeline processes: RSS, summed) is sampled every 2 s together with how far it has got.

JSON keys: ``rss_growth_mb`` (from minute 10 of video to the end: the highest sample after it
less the sample at it; target <= 50), ``windows_expected``, ``windows_written``,
``windows_lost`` (0), ``windows_duplicated`` (0), ``frames_expected``, ``frames_recorded``
(every frame counted once, kills or not), ``lag_p99_s`` (a batch's first frame read to the
batch in the database; target <= 10), ``frames_dropped``, ``service_kills``, ``wall_seconds``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import write_json  # noqa: E402
from peopleflow.database import ResultsDB  # noqa: E402
from peopleflow.generate import StoreParams, generate  # noqa: E402

BASE_MINUTES = 2.0
START = "2026-12-01T09:00"


def looped_store(cameras: int, minutes: int, fps: float) -> tuple[Path, int]:
    """A store whose videos are the generated store's, looped to ``minutes``; and the frames
    each camera gives at ``fps``."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("bench_soak needs ffmpeg (make test installs it)")
    base = generate(
        Path(".cache/peopleflow") / f"soak-base-c{cameras}",
        StoreParams(cameras=cameras, shoppers=20, minutes=BASE_MINUTES, seed=21),
        progress=print,
    )
    loops = int(np.ceil(minutes / BASE_MINUTES))
    folder = base.parent / f"looped-{minutes}"
    folder.mkdir(exist_ok=True)
    text = base.read_text()
    for k in range(1, cameras + 1):
        src, dst = base.parent / "videos" / f"cam{k}.mp4", folder / f"cam{k}.mp4"
        if not dst.is_file():
            subprocess.run(
                [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-stream_loop",
                 str(loops - 1), "-i", str(src), "-c", "copy", "-t", str(minutes * 60),
                 str(dst)],
                check=True,
            )  # fmt: skip
        text = text.replace(f'source = "videos/cam{k}.mp4"', f'source = "{dst.resolve()}"')
    text = text.replace("fps = 2\n", f"fps = {fps:g}\n")
    config = folder / "store.toml"
    config.write_text(text)
    return config, int(round(minutes * 60 * fps))


def tree_rss(pid: int) -> float:
    """MB resident: the process and every descendant."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / 2**20


def position(db: str) -> float | None:
    results = ResultsDB.open(db)
    try:
        names = results.store_names()
        return results.resume(names[0], 0.0, "{}").position if names else None
    finally:
        results.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=int, default=60, help="minutes of video (60)")
    ap.add_argument("--kill-every", type=float, help="SIGKILL the service every S seconds")
    ap.add_argument("--cameras", type=int, default=2)
    ap.add_argument("--fps", type=float, default=1.0, help="frames per second sampled (1)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    config, per_camera = looped_store(args.cameras, args.minutes, args.fps)
    folder = Path(tempfile.mkdtemp(prefix="peopleflow-soak-"))
    db = f"sqlite:///{folder / 'soak.sqlite'}"
    cmd = [sys.executable, "-m", "peopleflow.cli", "serve", "--config", str(config), "--db", db]
    cmd += ["--quiet", "--start", START, "--workers", str(args.workers)]
    samples: list[tuple[float, float | None, float]] = []  # wall, position, RSS MB
    kills, started = 0, time.monotonic()
    print(f"soak: {args.minutes} min of {args.cameras} cameras at {args.fps:g} fps -> {db}")
    while True:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        born = time.monotonic()
        while proc.poll() is None:
            time.sleep(2.0)
            samples.append((time.monotonic() - started, position(db), tree_rss(proc.pid)))
            if args.kill_every and time.monotonic() - born >= args.kill_every:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                print(f"  killed the service ({kills}) at {samples[-1][0]:.0f} s")
                break
        out, _ = proc.communicate()
        if proc.returncode == 0:
            break
        if proc.returncode != -signal.SIGKILL:
            sys.exit(f"the service failed ({proc.returncode}):\n{out}")
    wall = time.monotonic() - started
    results = ResultsDB.open(db)
    try:
        store = results.store_names()[0]
        origin = results.resume(store, 0.0, "{}").origin
        closed = results.closed_windows(store)
        health = results.camera_health(store)
        lags = [b.written - b.captured for b in results.batches(store) if b.captured > 0]
    finally:
        results.close()
    expected = [int(origin) + 60 * k for k in range(args.minutes)]
    at10 = [s for s in samples if s[1] is not None and s[1] - origin >= 600]
    growth = max(s[2] for s in at10) - at10[0][2] if at10 else float("nan")
    body = {
        "minutes": args.minutes,
        "cameras": args.cameras,
        "fps": args.fps,
        "kill_every_s": args.kill_every,
        "service_kills": kills,
        "wall_seconds": round(wall, 1),
        "rss_growth_mb": round(growth, 1),
        "rss_at_minute_10_mb": round(at10[0][2], 1) if at10 else None,
        "rss_max_mb": round(max(s[2] for s in samples), 1) if samples else None,
        "windows_expected": len(expected),
        "windows_written": len(set(closed) & set(expected)),
        "windows_lost": len(set(expected) - set(closed)),
        "windows_duplicated": len(closed) - len(set(closed)),
        "frames_expected": per_camera * args.cameras,
        "frames_recorded": sum(c.frames for c in health.values()),
        "frames_dropped": sum(c.dropped for c in health.values()),
        "lag_p99_s": round(float(np.percentile(lags, 99)), 2) if lags else None,
        "lag_median_s": round(float(np.median(lags)), 2) if lags else None,
    }
    for key, value in body.items():
        print(f"  {key:22s} {value}")
    write_json(args.json, body)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
