"""How many 1080p cameras at 10 fps the person detector sustains, per engine and device.

    python benchmarks/bench_detector.py [--input 384x640] [--batches 1,8,32] \
        [--seconds 5] [--json out/bench_detector.json]

Three measurements, each in this one run:

1. **Model**: frames/s of the YOLOv8s forward pass alone (``YoloDetector.infer`` on an
   already letterboxed batch), per engine (onnxruntime; PyTorch when installed, on CUDA when
   PyTorch sees a GPU) and batch size.
2. **Host work per frame on one core**: decoding a 1080p H.264/MPEG-4 frame with OpenCV,
   letterboxing it to the model's input, and decoding plus NMS of the model's output.
3. **Cameras sustained** at 10 fps: ``min(model frames/s, host frames/s x cores) / 10``,
   where the host work runs in parallel over the machine's cores (conveyor's replicas) and
   the model's batches run on the one GPU (or, without one, share the cores too).

The frames are the synthetic store's renders scaled to 1920x1080, so the boxes the model
finds (and the NMS it does) are those of a real run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import write_json  # noqa: E402
from peopleflow.detect import YoloDetector  # noqa: E402
from peopleflow.generate import people_at  # noqa: E402
from peopleflow.layouts import cameras_for  # noqa: E402
from peopleflow.render import Renderer  # noqa: E402
from peopleflow.simulate import default_plan, simulate  # noqa: E402


def rendered_1080p(count: int) -> list[np.ndarray]:
    """``count`` store frames with shoppers in them, scaled to 1920x1080."""
    plan = default_plan()
    shoppers = simulate(plan, 40, 120.0, seed=0)
    renderers = [Renderer(cam, plan, seed=0) for cam in cameras_for(plan, 4)]
    frames = []
    for k in range(count):
        image, _ = renderers[k % len(renderers)].frame(people_at(shoppers, 30.0 + k))
        frames.append(cv2.resize(image, (1920, 1080), interpolation=cv2.INTER_LINEAR))
    return frames


def rate(fn, seconds: float) -> float:
    """Calls of ``fn`` per second over about ``seconds`` (after one warm-up call)."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 3:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def host_rates(frames: list[np.ndarray], det: YoloDetector, seconds: float) -> dict[str, float]:
    """Per-frame host work on one core: video decode, letterbox, output decode + NMS."""
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "1080p.mp4")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 10, (1920, 1080))
        for f in frames:
            writer.write(f)
        writer.release()

        def decode_all() -> None:
            cap = cv2.VideoCapture(path)
            while cap.grab():
                cap.retrieve()
            cap.release()

        decode = rate(decode_all, seconds) * len(frames)
    letterbox = rate(lambda: det.letterbox(frames[:1]), seconds)
    raw = det.infer(det.letterbox(frames[:1])[0])
    post = rate(lambda: det._decode(raw[0], 1 / 3), seconds)
    per_frame = 1 / decode + 1 / letterbox + 1 / post
    return {
        "decode_fps": decode,
        "letterbox_fps": letterbox,
        "postprocess_fps": post,
        "host_fps_per_core": 1 / per_frame,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default="384x640", help="model input HxW (multiples of 32)")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU model threads")
    ap.add_argument("--engines", default="onnxruntime,torch")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    h, w = (int(v) for v in args.input.split("x"))
    batches = [int(b) for b in args.batches.split(",")]
    cores = os.cpu_count() or 1

    print("rendering 1080p frames ...", flush=True)
    frames = rendered_1080p(max(batches))
    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {cores} cores",
        "input": [h, w],
        "frame": [1080, 1920],
    }
    detectors = []
    for engine in args.engines.split(","):
        try:
            det = YoloDetector((h, w), score=0.25, threads=args.threads, engine=engine)
        except Exception as exc:  # an engine that is not installed is reported, not fatal
            print(f"{engine}: not available ({exc})")
            continue
        detectors.append(det)
    if not detectors:
        sys.exit("no detector engine could be built")

    host = host_rates(frames, detectors[0], args.seconds)
    results["host_one_core"] = host
    print(
        "host work per 1080p frame on one core: "
        + ", ".join(f"{k} {v:.0f}" for k, v in host.items())
    )
    host_total = host["host_fps_per_core"] * cores
    model_rows = []
    for det in detectors:
        found = sum(len(b) for b, _ in det(frames[:8]))
        for b in batches:
            batch, _ = det.letterbox(frames[:b])
            fps = rate(lambda det=det, batch=batch: det.infer(batch), args.seconds) * b
            gpu = any("cuda" in p.lower() for p in det.providers)
            # On a GPU the model and the host work overlap; on a CPU they share the cores.
            total = min(fps, host_total) if gpu else 1 / (1 / fps + 1 / host_total)
            row = {
                "engine": det.engine,
                "device": det.providers[0],
                "batch": b,
                "model_fps": round(fps, 1),
                "cameras_1080p_10fps": int(total // 10),
                "people_in_8_frames": found,
            }
            model_rows.append(row)
            print(
                f"{det.engine:12s} {det.providers[0]:24s} batch {b:3d}: "
                f"model {fps:8.1f} frames/s -> {row['cameras_1080p_10fps']} cameras "
                f"of 1080p at 10 fps",
                flush=True,
            )
    results["model"] = model_rows
    best = max(model_rows, key=lambda r: r["cameras_1080p_10fps"])
    results["cameras_1080p_10fps"] = best["cameras_1080p_10fps"]
    print(f"\nbest: {best['cameras_1080p_10fps']} cameras ({best['engine']}, {best['device']})")
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
