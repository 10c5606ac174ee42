"""The people-flow application's speed and accuracy: local backend against inline, one run.

    python benchmarks/bench_peopleflow.py [--cameras 8] [--minutes 2] [--seconds 30] \
        [--json out/bench_peopleflow.json]

Generates (or reuses) the synthetic store, then runs the same first ``--seconds`` of video of
every camera through the pipeline on the inline backend (one process) and on the local
backend (one process per pipeline), and reports frames per second, the real-time factor
(seconds of video processed per wall second, over all cameras), the speed-up, and the
accuracy of both runs against the ground truth. ``--full`` adds a local run over the whole
video for the accuracy targets.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import write_json  # noqa: E402
from peopleflow.app import run_store, score  # noqa: E402
from peopleflow.config import load_config  # noqa: E402
from peopleflow.generate import StoreParams, generate, load_truth  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--shoppers", type=int, default=40)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=30.0, help="video seconds for the speeds")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--full", action="store_true", help="also the whole video on local")
    ap.add_argument("--data", type=Path, default=Path(".cache/peopleflow/bench-store"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    config = generate(args.data, StoreParams(args.cameras, args.shoppers, args.minutes))
    cfg = load_config(config)
    truth, _ = load_truth(config.parent / "truth.npz")
    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "cameras": args.cameras,
        "seconds": args.seconds,
    }
    runs = {}
    for backend in ("inline", "local"):
        print(f"\n{backend}: first {args.seconds:g} s of {args.cameras} cameras", flush=True)
        s = run_store(
            config,
            None,
            backend=backend,
            workers=args.workers,
            seconds=args.seconds,
            progress=False,
        )
        runs[backend] = s
        results[backend] = {**s.speed(), **score(s.report, truth, cfg, args.seconds)}
        print(f"  {s.frames_per_second:.2f} frames/s, {s.realtime_factor:.2f}x real time")
    results["speedup_vs_inline"] = round(
        runs["local"].frames_per_second / runs["inline"].frames_per_second, 3
    )
    if args.full:
        print(f"\nlocal: the whole {args.minutes:g} min", flush=True)
        s = run_store(config, None, backend="local", workers=args.workers, progress=False)
        results["local_full"] = {**s.speed(), **score(s.report, truth, cfg)}
    print(f"\nspeed-up of local over inline: {results['speedup_vs_inline']}x")
    write_json(args.json, results)


if __name__ == "__main__":
    main()
