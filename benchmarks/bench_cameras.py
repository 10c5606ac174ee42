"""How many 1080p cameras one machine keeps up with, serial against conveyor.

    python benchmarks/bench_cameras.py --json PATH [--resolution 1080p] [--seconds 60]

The people-flow graph runs on N cameras whose video is generated H.264 (rendered store frames
of a drawn tuning store, encoded with ffmpeg's libx264, a key frame every 2 s; cached under
``--data``), each read **at real-time pace** and sampled at 5 fps: a frame the pipeline is more
than a period late for is dropped, as a live camera's would be (``peopleflow run
--realtime``). For each variant it finds the largest N with at most 1% of the frames dropped
over ``--seconds`` of video: N doubles from 1 until a run drops more, then the gap is bisected.

- ``serial``: the inline backend, every task in one thread (what a hand-written loop does);
- ``conveyor``: the local backend over the machine's cores.

Four distinct camera views are rendered; camera k shows view k mod 4 (decoding and detecting
cost the same whichever view a camera shows). JSON keys: ``cameras_serial``,
``cameras_conveyor``, ``cameras_ratio`` (target >= 1.8 on 2 cores), ``decode_ms_per_frame``
(OpenCV, one thread), ``detect_ms_per_frame`` (the detector at the input a store run chooses
for these cameras, one thread), ``trials`` (every run: N, frames, dropped, share) and the
machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import TUNE_SEED  # noqa: E402
from bench_common import write_json  # noqa: E402
from peopleflow.app import run_store  # noqa: E402
from peopleflow.config import load_config  # noqa: E402
from peopleflow.generate import people_at, store_toml  # noqa: E402
from peopleflow.layouts import aimed_pitch, cameras_for, drawn_layout  # noqa: E402
from peopleflow.render import PinholeCamera, Renderer  # noqa: E402
from peopleflow.simulate import Crowd, simulate  # noqa: E402

RESOLUTIONS = {"1080p": (1920, 1080), "720p": (1280, 720), "360p": (640, 360)}
FPS = 5.0
VIEWS = 4
MAX_DROPPED = 0.01
SEED = TUNE_SEED + 90


def render_views(
    folder: Path, size: tuple[int, int], seconds: float
) -> tuple[object, list[PinholeCamera]]:
    """The store's plan and its ``VIEWS`` cameras, their videos under ``folder`` (reused when
    there)."""
    layout = drawn_layout(SEED, 1)
    height = 3.4
    cams = cameras_for(layout.plan, VIEWS, size, height, aimed_pitch(height, 8.0), 75.0)
    frames = int(seconds * FPS)
    if shutil.which("ffmpeg") is None:
        sys.exit("bench_cameras needs ffmpeg (apt-get install ffmpeg) to encode H.264")
    shoppers = simulate(layout.plan, 60, seconds, FPS, SEED, layout.doors, Crowd(0.4, 2))
    folder.mkdir(parents=True, exist_ok=True)
    for k, cam in enumerate(cams):
        path = folder / f"view{k + 1}.mp4"
        if path.is_file():
            continue
        print(f"rendering {cam.name}: {frames} frames at {size[0]}x{size[1]} ...", flush=True)
        renderer = Renderer(cam, layout.plan, SEED + k)
        partial = path.with_suffix(".part.mp4")
        encoder = subprocess.Popen(
            [
                "ffmpeg",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "bgr24",
                "-s",
                f"{size[0]}x{size[1]}",
                "-r",
                f"{FPS:g}",
                "-i",
                "-",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "23",
                "-g",
                f"{int(2 * FPS)}",
                "-pix_fmt",
                "yuv420p",
                str(partial),
            ],
            stdin=subprocess.PIPE,
        )
        assert encoder.stdin is not None
        for j in range(frames):
            image, _ = renderer.frame(people_at(shoppers, j / FPS))
            encoder.stdin.write(image.tobytes())
        encoder.stdin.close()
        if encoder.wait() != 0:
            sys.exit(f"ffmpeg could not encode {path}")
        partial.replace(path)
    return layout.plan, cams


def store_of(folder: Path, plan: object, views: list[PinholeCamera], count: int) -> Path:
    """A store file of ``count`` cameras, camera k showing view k mod ``VIEWS``."""
    store = folder / f"store-{count}"
    (store / "videos").mkdir(parents=True, exist_ok=True)
    cams = []
    for k in range(count):
        cam = dataclasses.replace(views[k % VIEWS], name=f"cam{k + 1}")
        link = store / "videos" / f"{cam.name}.mp4"
        if not link.exists():
            link.symlink_to(folder / f"view{k % VIEWS + 1}.mp4")
        cams.append(cam)
    config = store / "store.toml"
    config.write_text(store_toml(plan, cams, FPS))  # type: ignore[arg-type]
    return config


def trial(config: Path, backend: str, seconds: float, workers: int | None) -> dict[str, object]:
    started = time.perf_counter()
    summary = run_store(
        config,
        None,
        backend=backend,
        workers=workers,
        seconds=seconds,
        progress=False,  # type: ignore[arg-type]
        realtime=True,
    )
    return {
        "backend": backend,
        "cameras": summary.cameras,
        "frames": summary.frames,
        "dropped": summary.dropped,
        "dropped_share": round(summary.dropped_share, 4),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def largest(
    folder: Path,
    plan: object,
    views: list[PinholeCamera],
    backend: str,
    seconds: float,
    workers: int | None,
    most: int,
    trials: list[dict[str, object]],
) -> int:
    """The largest camera count ``backend`` keeps up with (0: not even one)."""

    def keeps_up(n: int) -> bool:
        row = trial(store_of(folder, plan, views, n), backend, seconds, workers)
        row["kept_up"] = float(row["dropped_share"]) <= MAX_DROPPED  # type: ignore[arg-type]
        trials.append(row)
        verdict = "kept up" if row["kept_up"] else "fell behind"
        share = float(row["dropped_share"])  # type: ignore[arg-type]
        print(
            f"  {backend:<7} {n:>3} cameras: {row['frames']} frames, {row['dropped']} dropped "
            f"({share:.1%}) -> {verdict}",
            flush=True,
        )
        return bool(row["kept_up"])

    good, bad = 0, None
    n = 1
    while n <= most:
        if keeps_up(n):
            good, n = n, n * 2
        else:
            bad = n
            break
    if bad is None:
        return good
    while bad - good > 1:
        mid = (good + bad) // 2
        if keeps_up(mid):
            good = mid
        else:
            bad = mid
    return good


def decode_ms(path: Path) -> float:
    import cv2

    cv2.setNumThreads(1)
    cap = cv2.VideoCapture(str(path))
    n, started = 0, time.perf_counter()
    while n < 100 and cap.grab():
        cap.retrieve()
        n += 1
    cap.release()
    return (time.perf_counter() - started) * 1000 / max(n, 1)


def detect_ms(config: Path) -> tuple[float, list[int]]:
    """The detector's time per frame at the input a store run chooses, one thread."""
    import cv2

    from peopleflow.detect import YoloDetector
    from peopleflow.sizing import detector_inputs

    cfg = load_config(config)
    cap = cv2.VideoCapture(str(cfg.cameras[0].source))
    frames = [cap.read()[1] for _ in range(8)]
    cap.release()
    size = (frames[0].shape[1], frames[0].shape[0])
    name = cfg.cameras[0].name
    chosen = detector_inputs(cfg.cameras, {name: size}, cfg.plan, cfg.detector.person_pixels)[name]
    det = YoloDetector(chosen, threads=1)
    det(frames[:4])
    started = time.perf_counter()
    for k in range(0, 8, 4):
        det(frames[k : k + 4])
    return (time.perf_counter() - started) * 1000 / 8, list(chosen)


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resolution", choices=sorted(RESOLUTIONS), default="1080p")
    ap.add_argument("--seconds", type=float, default=60.0, help="video per trial (60)")
    ap.add_argument("--most", type=int, default=64, help="the most cameras tried")
    ap.add_argument("--workers", type=int, default=None, help="conveyor's processes")
    ap.add_argument("--variants", default="serial,conveyor")
    ap.add_argument("--data", type=Path, default=Path(".cache/peopleflow/bench-cameras"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    size = RESOLUTIONS[args.resolution]
    folder = (args.data / f"{args.resolution}-{args.seconds:g}s").resolve()
    plan, views = render_views(folder, size, args.seconds)
    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "resolution": list(size),
        "fps": FPS,
        "seconds": args.seconds,
        "max_dropped": MAX_DROPPED,
    }
    results["decode_ms_per_frame"] = round(decode_ms(folder / "view1.mp4"), 2)
    ms, chosen = detect_ms(store_of(folder, plan, views, 1))
    results["detect_ms_per_frame"] = round(ms, 1)
    results["detector_input"] = chosen
    print(
        f"{args.resolution}: decode {results['decode_ms_per_frame']} ms/frame, detect "
        f"{results['detect_ms_per_frame']} ms/frame at {chosen[0]}x{chosen[1]} (one thread)",
        flush=True,
    )
    trials: list[dict[str, object]] = []
    for variant in args.variants.split(","):
        backend = {"serial": "inline", "conveyor": "local"}[variant]
        results[f"cameras_{variant}"] = largest(
            folder, plan, views, backend, args.seconds, args.workers, args.most, trials
        )
    if "cameras_serial" in results and "cameras_conveyor" in results:
        serial = int(results["cameras_serial"])  # type: ignore[call-overload]
        results["cameras_ratio"] = (
            round(int(results["cameras_conveyor"]) / serial, 2) if serial else None  # type: ignore[call-overload]
        )
    results["trials"] = trials
    for key in ("cameras_serial", "cameras_conveyor", "cameras_ratio"):
        if key in results:
            print(f"{key:<20}{results[key]}")
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
