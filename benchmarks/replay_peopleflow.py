"""Replay the people-flow tracking and association over cached detections, and score them.

    python benchmarks/replay_peopleflow.py [--store DIR] [--input HxW] [--score S] [--json OUT]

Detection is most of a run's time; tracking and association are most of its accuracy. This
script runs the detector over every camera of a generated store once, cached in an ``.npz``
beside the store with every box scoring at least ``CACHE_SCORE`` (a higher ``--score`` is the
same boxes filtered: trying thresholds needs no new detection). Then it replays
``CameraTracker`` and ``FloorTracker`` exactly as the pipeline does (cameras in name order at
each instant) in a few seconds, and prints the accuracy against the ground truth with the
per-zone dwell behind it. It is the tool for tuning the trackers: change them, run this,
compare.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import write_json  # noqa: E402
from peopleflow.analytics import accuracy, analyse  # noqa: E402
from peopleflow.app import store_report  # noqa: E402
from peopleflow.config import PERSON_PIXELS, StoreConfig, load_config  # noqa: E402
from peopleflow.coverage import Coverage  # noqa: E402
from peopleflow.detect import make_detector  # noqa: E402
from peopleflow.generate import load_truth  # noqa: E402
from peopleflow.pipeline import FloorPeople, associate, camera_tracker  # noqa: E402
from peopleflow.sizing import detector_inputs  # noqa: E402
from peopleflow.sources import CameraReader  # noqa: E402
from peopleflow.track import (  # noqa: E402
    LOOK_SIZE,
    CameraTracker,
    FloorTracker,
    Placed,
    appearance,
    reid_window,
)

DEFAULT_STORE = Path(".cache/peopleflow/store-c8-s40-m2-f2-r0")
CACHE_SCORE = 0.1
SIZING_VERSION = 2  # bump when peopleflow.sizing chooses other inputs: per-camera caches go


def detect_all(cfg: StoreConfig, inputs: dict[str, tuple[int, int]], batch: int = 8) -> dict:
    """Every camera's detections at its input (``inputs``): flat arrays plus per-frame
    offsets."""
    det = make_detector("yolo", score=CACHE_SCORE, threads=2, precision=cfg.detector.precision)
    rows: list[tuple[str, int, float, int, int]] = []
    boxes, scores, looks = [], [], []
    started = time.perf_counter()
    for cam in cfg.cameras:
        reader = CameraReader(cam.name, cam.source, cam.fps)
        frames = list(reader)
        for k in range(0, len(frames), batch):
            chunk = frames[k : k + batch]
            images = [pixels for _, _, pixels in chunk]
            found = det(images, [inputs[cam.name]] * len(images))
            for (index, ts, img), (b, s) in zip(chunk, found, strict=True):
                rows.append((cam.name, index, ts, img.shape[1], img.shape[0]))
                boxes.append(b)
                scores.append(s)
                looks.append(appearance(img, b))
        print(f"  {cam.name}: {len(frames)} frames ({time.perf_counter() - started:.0f} s)")
    counts = np.array([len(s) for s in scores])
    return {
        "camera": np.array([r[0] for r in rows]),
        "index": np.array([r[1] for r in rows]),
        "ts": np.array([r[2] for r in rows]),
        "size": np.array([r[3:] for r in rows]),
        "offsets": np.r_[0, np.cumsum(counts)],
        "boxes": np.concatenate(boxes).reshape(-1, 4),
        "scores": np.concatenate(scores),
        "looks": np.concatenate(looks).reshape(-1, LOOK_SIZE),
    }


def above(d: dict, score: float) -> dict:
    """The cached detections scoring at least ``score``."""
    keep = d["scores"] >= score
    bounds = zip(d["offsets"][:-1], d["offsets"][1:], strict=True)
    counts = [int(keep[a:b].sum()) for a, b in bounds]
    out = dict(d, offsets=np.r_[0, np.cumsum(counts)])
    for key in ("boxes", "scores", "looks"):
        out[key] = d[key][keep]
    return out


# How far ``shaken`` moves the detections (standard deviations): about what the detector in
# 8-bit integers moves them by (docs/peopleflow.md, "8-bit integers on a CPU"; box edges by
# 0.3% of the box's height at the median, 1.5% at the 90th percentile; scores by 0.02-0.03).
SHAKE_BOX = 0.005  # of the box's height, each corner's coordinate
SHAKE_SCORE = 0.025


def shaken(d: dict, seed: int) -> dict:
    """The cached detections moved by noise that no change to the pipeline could be tuned to:
    each box corner by ``SHAKE_BOX`` of the box's height, each score by ``SHAKE_SCORE``.
    Replays that differ only by this are one pipeline on one store; their spread is how far a
    figure moves for nothing (thresholds crossed one way or the other), so a change that
    moves it less cannot be told from none, and a store's figure replayed unshaken, after
    choices made on it, is an optimistic draw from that spread."""
    rng = np.random.default_rng(seed)
    boxes = d["boxes"].astype(np.float64)
    tall = (boxes[:, 3] - boxes[:, 1])[:, None]
    boxes += rng.normal(0.0, SHAKE_BOX, boxes.shape) * tall
    scores = d["scores"] + rng.normal(0.0, SHAKE_SCORE, len(boxes))
    return dict(d, boxes=boxes.astype(np.float32), scores=scores.astype(np.float32))


def replay(cfg: StoreConfig, d: dict, options: dict | None = None) -> list[FloorPeople]:
    """The pipeline's Track and Associate (the same functions), in one process."""
    trackers: dict[str, CameraTracker] = {}
    by_index: dict[int, tuple[float, list[Placed]]] = {}
    order = np.lexsort((d["index"], d["camera"]))  # each camera's frames in time order
    for r in order:
        name = str(d["camera"][r])
        if name not in trackers:
            size = (int(d["size"][r][0]), int(d["size"][r][1]))
            cam = next(c for c in cfg.cameras if c.name == name)
            trackers[name] = camera_tracker(cfg, cam, size)
        a, b = d["offsets"][r], d["offsets"][r + 1]
        placed = trackers[name].update(d["boxes"][a:b], d["scores"][a:b], d["looks"][a:b])
        by_index.setdefault(int(d["index"][r]), (float(d["ts"][r]), []))[1].append(placed)
    floor = FloorTracker(**(options or {}))
    return [associate(floor, i, *by_index[i]) for i in sorted(by_index)]


def cached_detections(
    cfg: StoreConfig, store: Path, fixed: tuple[int, int] | None, cache: Path | None = None
) -> dict:
    """Every frame's detections (``CACHE_SCORE`` and up), from the store's cache or made now:
    at ``fixed`` input, else the store's, else each camera's own (what a run chooses)."""
    fixed = fixed or cfg.detector.input
    sizes = {c.name: CameraReader(c.name, c.source, c.fps).probe()[::-1] for c in cfg.cameras}
    pixels = cfg.detector.person_pixels
    inputs = (
        {c.name: fixed for c in cfg.cameras}
        if fixed
        else detector_inputs(cfg.cameras, sizes, cfg.plan, pixels)  # type: ignore[arg-type]
    )
    label = (
        f"{fixed[0]}x{fixed[1]}"
        if fixed
        else f"per-camera-v{SIZING_VERSION}" + ("" if pixels == PERSON_PIXELS else f"-{pixels:g}px")
    ) + ("" if cfg.detector.precision == "float32" else f"-{cfg.detector.precision}")
    cache = cache or store / f"detections-{label}.npz"
    if not cache.is_file():
        print(f"detecting every frame once (cached in {cache}) ...", flush=True)
        _save(cache, detect_all(cfg, inputs))  # type: ignore[arg-type]
    d = dict(np.load(cache))
    if d["looks"].shape[1] != LOOK_SIZE:
        print(f"looks of another kind in {cache}: made again from the videos ...", flush=True)
        d["looks"] = looks_of(cfg, d)
        _save(cache, d)
    return d


def _save(cache: Path, d: dict) -> None:
    partial = cache.with_suffix(".part.npz")
    np.savez_compressed(partial, **d)
    partial.replace(cache)


def looks_of(cfg: StoreConfig, d: dict) -> np.ndarray:
    """The looks (``peopleflow.track.appearance``) of cached detections, from the videos: when
    the look changes, the boxes need no new detection (seconds a store, not minutes)."""
    looks = np.zeros((len(d["boxes"]), LOOK_SIZE), np.float32)
    rows = {
        (str(c), int(i)): r for r, (c, i) in enumerate(zip(d["camera"], d["index"], strict=True))
    }
    for cam in cfg.cameras:
        for index, _, img in CameraReader(cam.name, cam.source, cam.fps):
            r = rows.get((cam.name, int(index)))
            if r is not None:
                a, b = d["offsets"][r], d["offsets"][r + 1]
                looks[a:b] = appearance(img, d["boxes"][a:b])
    return looks


def replay_store(cfg: StoreConfig, d: dict) -> tuple[list[FloorPeople], Coverage, float]:
    """The pipeline's outputs replayed from detections, the coverage, and the seconds taken."""
    sizes = {str(c): (int(s[0]), int(s[1])) for c, s in zip(d["camera"], d["size"], strict=True)}
    coverage = Coverage.of(cfg.plan, cfg.cameras, sizes)
    started = time.perf_counter()
    instants = replay(cfg, d, {"reid_window": reid_window(coverage.share_seen())})
    return instants, coverage, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, default=DEFAULT_STORE, help="a generated store")
    ap.add_argument("--detections", type=Path, help="cache (default: in the store's folder)")
    ap.add_argument(
        "--input", help="detector input HxW (default: the store's, else each camera's own)"
    )
    ap.add_argument("--score", type=float, help="lowest detection score (default: the store's)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    config = args.store / "store.toml"
    if not config.is_file():
        sys.exit(f"{config} not found: run `peopleflow generate` (or make demo) first")
    cfg = load_config(config)
    fixed = tuple(int(v) for v in args.input.split("x")) if args.input else None
    score_at_least = cfg.detector.score if args.score is None else args.score
    if score_at_least < CACHE_SCORE:
        sys.exit(f"--score {score_at_least}: the cache keeps boxes scoring {CACHE_SCORE} or more")
    d = above(cached_detections(cfg, args.store, fixed, args.detections), score_at_least)  # type: ignore[arg-type]
    instants, coverage, elapsed = replay_store(cfg, d)
    truth, _ = load_truth(args.store / "truth.npz")
    people, report = store_report(instants, cfg, coverage)
    print(people.verdict.describe())
    true = analyse(truth, cfg.plan, min_visit=cfg.min_visit)
    metrics = accuracy(report, true)
    print(f"replayed {len(d['index'])} frames in {elapsed:.1f} s")
    print(f"{'zone':12s} {'dwell':>8s} {'true':>8s} {'error':>7s}")
    for zone, secs in true.zone_dwell.items():
        est = report.zone_dwell.get(zone, 0.0)
        print(f"{zone:12s} {est:8.0f} {secs:8.0f} {(est - secs) / max(secs, 1e-9):+7.2f}")
    print(json.dumps(metrics, indent=2))
    write_json(args.json, {"metrics": metrics, "replay_seconds": elapsed})


if __name__ == "__main__":
    main()
