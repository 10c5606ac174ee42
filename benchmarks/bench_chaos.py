"""Chaos soak: a multi-camera graph runs while random pipelines are killed with SIGKILL.

    python benchmarks/bench_chaos.py --seconds 60 --kill-every 3 --json out/bench_chaos.json

The graph: 8 synthetic cameras (paced to finish in about ``--seconds``) -> a stateless feature
task (numpy work on a 240x320 frame) -> a stateful per-camera counter (key="camera") ->
collected in the parent. Every ``--kill-every`` seconds a random pipeline process gets SIGKILL.
Reported: items in and out, lost (expected but never delivered), duplicated (delivered more
than once), restarts, recovery time (death seen by the supervisor -> the replacement's loop
running again) p50 and p99, and ``state_errors``: outputs of the stateful counter whose count
is not what an uninterrupted run gives (its state is checkpointed and restored, so 0).

Then a short hang run: ``--hangs`` calls of the feature task loop forever (injected faults)
under a ``--hang-timeout``; reported is how long each hung call had run when the monitor
killed it (``hang_detect_s_max``; the target is at most the timeout plus 1 s).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import conveyor as cv  # noqa: E402
from bench_common import write_json  # noqa: E402

CAMERAS = 8
START_ENV, RATE_ENV, COUNT_ENV = "CHAOS_START", "CHAOS_RATE", "CHAOS_FRAMES"


@dataclass
class Shot:
    camera: str
    index: int
    pixels: np.ndarray


@dataclass
class Feature:
    camera: str
    index: int
    value: float


@dataclass
class Counted:
    camera: str
    index: int
    seen: int


@cv.source
def cameras() -> Iterator[Shot]:
    """Paced by the wall clock, so a restarted source catches up at once on skipped items."""
    start, rate = float(os.environ[START_ENV]), float(os.environ[RATE_ENV])
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    n = 0
    for index in range(int(os.environ[COUNT_ENV])):
        for c in range(CAMERAS):
            due = start + n / rate
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            n += 1
            yield Shot(f"cam{c}", index, base)


@cv.task(replicas=1, batch=4, max_wait=0.01)
def features(shots: list[Shot]) -> list[Feature]:
    return [Feature(s.camera, s.index, float(s.pixels[::4, ::4].mean())) for s in shots]


@cv.task(key="camera", replicas=1)
class Count:
    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, f: Feature) -> Counted:
        self.seen += 1
        return Counted(f.camera, f.index, self.seen)


def pipeline_pids() -> list[int]:
    """The run's pipeline processes (named ``conveyor-p<index>``; not the warm spare)."""
    out = []
    for child in psutil.Process().children(recursive=False):
        try:
            name = child.name()
        except psutil.Error:
            continue
        if name.startswith("conveyor-p"):
            out.append(child.pid)
    return out


def killer(stop: threading.Event, every: float, kills: list[float]) -> None:
    rnd = random.Random(1)
    while not stop.wait(every):
        pids = pipeline_pids()
        if pids:
            victim = rnd.choice(pids)
            try:
                os.kill(victim, signal.SIGKILL)
                kills.append(time.monotonic())
            except ProcessLookupError:
                pass


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def hang_run(hangs: int, timeout: float, workers: int) -> dict[str, object]:
    """A short run in which ``hangs`` calls of ``features`` never return."""
    from conveyor.testing import Fault, inject

    if hangs <= 0:
        return {}
    frames = 60
    os.environ[START_ENV] = str(time.time())
    os.environ[RATE_ENV] = str(1e6)  # unpaced
    os.environ[COUNT_ENV] = str(frames)
    print(f"\nhang run: {hangs} hung calls, timeout {timeout} s", flush=True)
    graph = cv.Graph([cameras, features, Count])
    faults = [Fault("features", item=10 + 5 * k, mode="hang") for k in range(hangs)]
    with inject(*faults):
        result = cv.run(
            graph,
            backend="local",
            plan=cv.make_plan(graph, workers=workers),
            collect=["Count"],
            restarts=cv.RestartPolicy(limit=hangs + 1, stall_timeout=timeout),
        )
    detect = [r.stalled for r in result.restarts if r.stalled is not None]
    got = Counter((c.camera, c.index) for c in result.outputs["Count"])
    return {
        "hang_timeout_s": timeout,
        "hangs_detected": len(detect),
        "hang_detect_s_max": max(detect) if detect else None,
        "hang_run_lost": frames * CAMERAS - len(got),
        "hang_run_duplicated": sum(n - 1 for n in got.values() if n > 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--kill-every", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=400.0, help="frames/s over all cameras")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hangs", type=int, default=3, help="hung calls in the hang run")
    parser.add_argument("--hang-timeout", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    frames = max(1, int(args.seconds * args.rate / CAMERAS))
    os.environ[START_ENV] = str(time.time() + 1.0)  # after the processes have started
    os.environ[RATE_ENV] = str(args.rate)
    os.environ[COUNT_ENV] = str(frames)
    graph = cv.Graph([cameras, features, Count])
    plan = cv.make_plan(graph, workers=args.workers)
    print(plan.describe())
    print(
        f"\nchaos: {frames * CAMERAS} frames over ~{args.seconds:.0f} s, SIGKILL every "
        f"{args.kill_every} s",
        flush=True,
    )
    stop, kills = threading.Event(), []
    thread = threading.Thread(target=killer, args=(stop, args.kill_every, kills), daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        result = cv.run(
            graph,
            backend="local",
            plan=plan,
            collect=["Count"],
            restarts=cv.RestartPolicy(limit=10_000, window=60.0),
        )
    finally:
        stop.set()
        thread.join()
    elapsed = time.monotonic() - started
    got = Counter((c.camera, c.index) for c in result.outputs["Count"])
    expected = {(f"cam{c}", i) for i in range(frames) for c in range(CAMERAS)}
    lost = len(expected - set(got))
    duplicated = sum(n - 1 for n in got.values() if n > 1)
    recoveries = [r.recovery * 1e3 for r in result.restarts if r.recovery is not None]
    state_errors = sum(1 for c in result.outputs["Count"] if c.seen != c.index + 1)
    report = {
        "seconds": round(elapsed, 2),
        "items_in": len(expected),
        "items_out": sum(got.values()),
        "lost": lost,
        "duplicated": duplicated,
        "kills": len(kills),
        "restarts": len(result.restarts),
        "recovery_ms_p50": percentile(recoveries, 50),
        "recovery_ms_p99": percentile(recoveries, 99),
        "state_errors": state_errors,
        "dead_letters": len(result.dead_letters),
        **hang_run(args.hangs, args.hang_timeout, args.workers),
        "cores": os.cpu_count(),
    }
    print()
    for key, value in report.items():
        shown = f"{value:.1f}" if isinstance(value, float) else value
        print(f"{key:<18} {shown}")
    write_json(args.json, report)


if __name__ == "__main__":
    main()
