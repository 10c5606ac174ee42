"""What the floor tracker (the pipeline's ``Associate`` stage) costs an instant, by camera count.

    python benchmarks/bench_associate.py [--cameras 8,16,30] [--instants 20] [--json PATH]

``Associate`` keeps one identity per person over every camera, so it runs in one process and
its time per instant bounds how many cameras a store may have (at 2 frames per second an
instant may take no more than 500 ms). The scene is drawn, not rendered: 4 shoppers per camera
on a 40 x 30 m floor, walking slowly, each camera seeing a third of them (so each person is seen
by about 3 cameras whose places are off by 0.2 m), every look a histogram of its own. The first
instant (imports, warm-up) is not timed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import write_json  # noqa: E402
from peopleflow.track import LOOK_SIZE, FloorTracker, Placed  # noqa: E402

SHOPPERS_PER_CAMERA = 4
STEP = 0.5  # seconds between instants


def scene(cameras: int, instants: int, seed: int = 0) -> list[list[Placed]]:
    """Every camera's placed people at each instant."""
    rng = np.random.default_rng(seed)
    people = SHOPPERS_PER_CAMERA * cameras
    looks = rng.random((people, 2, LOOK_SIZE // 2)).astype(np.float32)
    looks = (looks / looks.sum(axis=2, keepdims=True)).reshape(people, LOOK_SIZE)
    start = rng.uniform([0, 0], [40, 30], (people, 2))
    heading = rng.normal(0, 0.6, (people, 2))  # m/s
    out = []
    for k in range(instants):
        where = np.clip(start + heading * k * STEP, 0, [40, 30])
        placed = []
        for c in range(cameras):
            seen = rng.choice(people, people // 3, replace=False)
            spread = np.tile(np.diag([0.2**2, 0.6**2]), (len(seen), 1, 1))
            floor = where[seen] + rng.normal(0, 0.2, (len(seen), 2))
            placed.append(
                Placed(f"cam{c}", seen, floor, np.full(len(seen), 80.0), looks[seen], spread)
            )
        out.append(placed)
    return out


def ms_per_instant(cameras: int, instants: int) -> tuple[float, int]:
    """Milliseconds per instant, and the people the last instant gave."""
    frames = scene(cameras, instants + 1)
    FloorTracker().update(0.0, frames[0])  # warm-up: imports
    floor = FloorTracker()
    started = time.perf_counter()
    out: list[tuple[int, float, float]] = []
    for k, placed in enumerate(frames[1:]):
        out = floor.update(k * STEP, placed)
    return 1000 * (time.perf_counter() - started) / instants, len(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cameras", default="8,16,30", help="camera counts, comma-separated")
    ap.add_argument("--instants", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    for cameras in (int(c) for c in args.cameras.split(",")):
        ms, people = ms_per_instant(cameras, args.instants)
        shoppers = SHOPPERS_PER_CAMERA * cameras
        print(
            f"{cameras:3d} cameras, {shoppers:3d} shoppers: {ms:7.1f} ms an instant "
            f"({people} people)"
        )
        rows.append(
            {
                "cameras": cameras,
                "shoppers": shoppers,
                "ms_per_instant": round(ms, 2),
                "people_out": people,
            }
        )
    write_json(args.json, {"instants": args.instants, "step_s": STEP, "rows": rows})


if __name__ == "__main__":
    main()
