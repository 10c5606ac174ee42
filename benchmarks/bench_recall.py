"""The person detector's recall per camera resolution, by how tall people are, and its cost.

    python benchmarks/bench_recall.py [--frames 12] [--scales 0.6,0.8,1.0] [--json PATH]

For each resolution (640x360, 1280x720, 1920x1080) it renders frames of drawn stores (their
layouts, mounting heights and tilts drawn from ``TUNE_SEED``, the tuning stores' seeds: the
sizing rule may be tuned on these, never on the evaluation stores) with 60 shoppers, a third or
more of them in alike dark clothes, and runs the YOLO detector on them with each input choice:

- ``fixed 288x512``: one input for every camera (the default before inputs were per camera);
- ``per camera``: ``peopleflow.sizing``'s input for the camera (what a store run uses);
- ``scale S``: the frame scaled by S (``--scales``), to see where recall stops improving.

Recall: the share of the people at least half visible whom a box finds (IoU >= 0.3, one box
per person), by their height in the frame (50-80, 80-120, 120-200, 200+ px; smaller people are
not counted). ``false_per_frame``: boxes that match no person, visible or not. ``ms_per_frame``:
the detector's time per frame on one thread, batches of 4. ``--precision int8``: the model in
8-bit integers (``peopleflow.quantize``; each input's model quantized once, before the clock).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import supervision as sv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import RESOLUTIONS, TUNE_SEED  # noqa: E402
from bench_common import write_json  # noqa: E402
from peopleflow.config import DETECTOR_INPUT, DETECTOR_SCORE, Camera  # noqa: E402
from peopleflow.detect import YoloDetector  # noqa: E402
from peopleflow.generate import people_at  # noqa: E402
from peopleflow.geometry import Homography  # noqa: E402
from peopleflow.layouts import aimed_pitch, cameras_for, drawn_layout  # noqa: E402
from peopleflow.render import Renderer  # noqa: E402
from peopleflow.simulate import Crowd, simulate  # noqa: E402
from peopleflow.sizing import detector_inputs, up32  # noqa: E402

BANDS = ((50, 80), (80, 120), (120, 200), (200, 10_000))
IOU = 0.3


def frames_of(
    resolution: str, count: int, seed: int
) -> list[tuple[str, np.ndarray, np.ndarray, tuple[int, int]]]:
    """``count`` frames per camera of a drawn store at ``resolution``: (camera, image, truth
    boxes (n, 5): x0 y0 x1 y1 visible, the camera's sizing input)."""
    rng = random.Random(seed)
    layout = drawn_layout(seed, rng.choice((1, 2)))
    w, h = (int(v) for v in resolution.split("x"))
    height = rng.uniform(2.5, 6.0)
    cams = cameras_for(
        layout.plan,
        4,
        (w, h),
        height,
        aimed_pitch(height, rng.uniform(6.0, 10.0)),
        rng.uniform(60.0, 95.0),
    )
    shoppers = simulate(layout.plan, 60, 120.0, 2.0, seed, layout.doors, Crowd(0.4, 3))
    configured = []
    for cam in cams:
        calib = cam.calibration(layout.plan)
        configured.append(
            Camera(cam.name, "-", 2.0, calib, Homography.fit(calib[:, :2], calib[:, 2:]))
        )
    inputs = detector_inputs(tuple(configured), {c.name: c.size for c in cams}, layout.plan)
    out = []
    for k, cam in enumerate(cams):
        renderer = Renderer(cam, layout.plan, seed + k)
        for j in range(count):
            image, truths = renderer.frame(people_at(shoppers, 20.0 + 8.0 * j))
            boxes = np.array([[*t.box, t.visible] for t in truths], np.float64).reshape(-1, 5)
            out.append((cam.name, image, boxes, inputs[cam.name]))
    return out


def score(found: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, object]:
    """Recall by height band, and false boxes per frame."""
    hits = {band: [0, 0] for band in BANDS}
    false = 0
    for boxes, truth in zip(found, truths, strict=True):
        matched = np.zeros(len(truth), bool)
        if len(boxes) and len(truth):
            iou = sv.box_iou_batch(boxes, truth[:, :4])
            for b in np.argsort(-iou.max(axis=1)):
                free = np.where(matched, -1.0, iou[b])
                t = int(free.argmax())
                if free[t] >= IOU:
                    matched[t] = True
                else:
                    false += 1
        else:
            false += len(boxes)
        tall = truth[:, 3] - truth[:, 1]
        for band in BANDS:
            counted = (truth[:, 4] >= 0.5) & (tall >= band[0]) & (tall < band[1])
            hits[band][0] += int((matched & counted).sum())
            hits[band][1] += int(counted.sum())
    recall = {
        f"{lo}-{hi if hi < 10_000 else ''}": round(n / total, 3) if total else None
        for (lo, hi), (n, total) in hits.items()
    }
    found_all = sum(n for n, _ in hits.values())
    total_all = sum(t for _, t in hits.values())
    return {
        "recall": recall,
        "recall_all": round(found_all / total_all, 3) if total_all else None,
        "people": total_all,
        "false_per_frame": round(false / max(1, len(found)), 2),
    }


def run_choice(
    det: YoloDetector,
    frames: list[tuple[str, np.ndarray, np.ndarray, tuple[int, int]]],
    inputs: list[tuple[int, int]],
) -> dict[str, object]:
    images = [f[1] for f in frames]
    found: list[np.ndarray] = []
    sizes = list(dict.fromkeys(inputs))  # each size's model built before the clock starts
    det([images[inputs.index(s)] for s in sizes], sizes)
    started = time.perf_counter()
    for k in range(0, len(images), 4):
        found += [b for b, _ in det(images[k : k + 4], inputs[k : k + 4])]
    ms = (time.perf_counter() - started) * 1000 / len(images)
    result = score(found, [f[2] for f in frames])
    return {
        "inputs": sorted({f"{h}x{w}" for h, w in inputs}),
        "ms_per_frame": round(ms, 1),
        **result,
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=12, help="frames per camera (4 cameras)")
    ap.add_argument("--scales", default="", help="frame scales to try besides, e.g. 0.6,0.8,1")
    ap.add_argument("--resolutions", default=",".join(RESOLUTIONS))
    ap.add_argument(
        "--precision", default="float32", help="the model's: float32 or int8 (peopleflow.quantize)"
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    det = YoloDetector(DETECTOR_INPUT, score=DETECTOR_SCORE, threads=1, precision=args.precision)
    results: dict[str, object] = {"score": DETECTOR_SCORE, "iou": IOU, "precision": args.precision}
    for k, resolution in enumerate(args.resolutions.split(",")):
        frames = frames_of(resolution, args.frames, TUNE_SEED + 50 + k)
        w, h = (int(v) for v in resolution.split("x"))
        choices = {
            "fixed 288x512": [DETECTOR_INPUT] * len(frames),
            "per camera": [f[3] for f in frames],
        }
        for s in filter(None, args.scales.split(",")):
            choices[f"scale {s}"] = [(up32(h * float(s)), up32(w * float(s)))] * len(frames)
        rows = {}
        for name, inputs in choices.items():
            rows[name] = row = run_choice(det, frames, inputs)
            print(
                f"{resolution:>9} {name:<14} inputs {','.join(row['inputs']):<28} "  # type: ignore[arg-type]
                f"recall {row['recall_all']} {row['recall']} false/frame "
                f"{row['false_per_frame']} {row['ms_per_frame']} ms/frame",
                flush=True,
            )
        results[resolution] = rows
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
