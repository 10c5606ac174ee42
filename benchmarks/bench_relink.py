"""How long the report's relinking (``peopleflow.relink``) takes over an hour of a store.

    python benchmarks/bench_relink.py [--store DIR] [--copies 30] [--json OUT]

The default store's two minutes, replayed from its cached detections as a run makes them
(``replay_peopleflow.py``; detected once if not cached), are laid end to end ``--copies``
times: an hour of observations at 30 copies. Each copy is other people: its looks' bins are
shuffled within each histogram by a generator of its own, so no copy's shopper looks like
another copy's (a copy of the same looks would join across copies, which is not what an hour
of a store holds). Then ``relink_people`` runs over the whole hour once, timed, on one core.

JSON keys: ``observations``, ``copies``, ``seconds`` (relinking, the hour), ``people`` (how
many it made, all copies), ``people_per_copy`` (the first copy relinked by itself; the hour
makes fewer than ``copies`` times as many, as pieces at the seams between copies join across
them, where a copy's video ends in mid-walk), ``partition`` (a digest of who was joined with
whom: equal digests are equal results, for checking that a speed-up changes nothing).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import write_json  # noqa: E402
from peopleflow.config import load_config  # noqa: E402
from peopleflow.people import Observations  # noqa: E402
from peopleflow.relink import relink_people  # noqa: E402
from peopleflow.track import HIST_BINS, HISTOGRAMS  # noqa: E402
from replay_peopleflow import DEFAULT_STORE, above, cached_detections, replay_store  # noqa: E402


def an_hour(obs: Observations, copies: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``copies`` of the observations end to end, each copy's looks shuffled its own way."""
    assert obs.looks is not None
    span = float(obs.t.max() - obs.t.min()) + 1.0
    ts, xys, looks = [], [], []
    for c in range(copies):
        rng = np.random.default_rng(c)
        order = np.concatenate(
            [
                h * HIST_BINS + (rng.permutation(HIST_BINS) if c else np.arange(HIST_BINS))
                for h in range(HISTOGRAMS)
            ]
        )
        ts.append(obs.t + c * span)
        xys.append(obs.xy)
        looks.append(obs.looks[:, order])
    return np.concatenate(ts), np.concatenate(xys), np.concatenate(looks)


def partition_digest(people: list) -> str:
    groups = sorted(tuple(int(m) for m in np.sort(p.members)) for p in people)
    return hashlib.sha1(repr(groups).encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, default=DEFAULT_STORE, help="a generated store")
    ap.add_argument("--copies", type=int, default=30, help="copies end to end (30: an hour)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.copies < 1:
        ap.error("--copies must be at least 1")
    config = args.store / "store.toml"
    if not config.is_file():
        sys.exit(f"{config} not found: run `peopleflow generate` (or make demo) first")
    cfg = load_config(config)
    d = above(cached_detections(cfg, args.store, None), cfg.detector.score)
    instants, _, _ = replay_store(cfg, d)
    obs = Observations.of(instants)
    doors = cfg.plan.doors
    one = relink_people(obs.t, obs.xy, obs.looks, doors)
    t, xy, looks = an_hour(obs, args.copies)
    print(f"relinking {len(t)} observations ({args.copies} copies of {len(obs)}) ...", flush=True)
    started = time.perf_counter()
    people = relink_people(t, xy, looks, doors)
    seconds = time.perf_counter() - started
    result = {
        "store": str(args.store),
        "observations": int(len(t)),
        "copies": args.copies,
        "seconds": round(seconds, 2),
        "people": len(people),
        "people_per_copy": len(one),
        "partition": partition_digest(people),
    }
    for key, value in result.items():
        print(f"{key:<18}{value}")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
