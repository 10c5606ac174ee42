"""The detector in 8-bit integers against float32: time per frame, alternating in one process.

    python benchmarks/bench_int8.py [--inputs 288x512,384x640,544x960,736x1280] [--rounds 4]
                                    [--json PATH]

For each input size it builds both models (the int8 one quantized once and cached,
``peopleflow.quantize``), then times them on the same batch of four rendered frames in turn,
``--rounds`` times each, on one thread: the ratio of the medians is the speed-up, taken in one
run so that a shared machine's drift hits both alike. Recall is ``bench_recall.py
--precision int8``'s job.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import write_json  # noqa: E402
from peopleflow.detect import YoloDetector  # noqa: E402
from peopleflow.quantize import calibration_frames  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", default="288x512,384x640,544x960,736x1280")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    frames = calibration_frames()[1::12]  # one frame of each camera (timing only)
    results: dict[str, object] = {"frames_per_batch": len(frames), "rounds": args.rounds}
    for text in args.inputs.split(","):
        h, w = (int(v) for v in text.split("x"))
        models = {
            p: YoloDetector((h, w), gpu=False, threads=1, precision=p) for p in ("float32", "int8")
        }
        batch, _ = models["float32"].letterbox(frames, (h, w))
        times: dict[str, list[float]] = {p: [] for p in models}
        for m in models.values():
            m.infer(batch)  # the first run allocates
        for _ in range(args.rounds):
            for p, m in models.items():
                started = time.perf_counter()
                m.infer(batch)
                times[p].append((time.perf_counter() - started) * 1000 / len(frames))
        ms = {p: round(statistics.median(t), 1) for p, t in times.items()}
        results[text] = {
            "float32_ms_per_frame": ms["float32"],
            "int8_ms_per_frame": ms["int8"],
            "speedup": round(ms["float32"] / ms["int8"], 2),
        }
        print(f"{text:>9}: {results[text]}", flush=True)
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
