"""The store's page under load: a day of a 30-camera store in the results database (generated
rows), 20 clients asking the data endpoints at once over loopback.

    python benchmarks/bench_web.py [--clients 20] [--seconds 20] [--json out/bench_web.json]

The rows: 24 hours of one-minute windows, each with dwell for 9 zones, 300 heat-map cells,
visits, 20 transitions, visitors, and frames for 30 cameras (what a busy store writes). The
clients each ask, in turn, the heat map, flows, dwell, visitors and cameras of "today" and of
one hour of it (a dashboard's questions), for ``--seconds``. JSON keys: ``p99_ms`` (target
<= 100), ``p50_ms``, ``rps``, ``requests``, ``errors``, ``rows``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import write_json  # noqa: E402
from peopleflow.analytics import Tally  # noqa: E402
from peopleflow.database import ResultsDB, plan_json  # noqa: E402
from peopleflow.recorder import Batch  # noqa: E402
from peopleflow.simulate import default_plan  # noqa: E402
from peopleflow.web import WebOptions, WebServer, create_app  # noqa: E402
from peopleflow.webapi import StoreData  # noqa: E402

STORE = "store 30"
CAMERAS = 30


def fill(db: ResultsDB, day: datetime) -> int:
    """A day of windows, one batch per 10 minutes; returns the rows written."""
    plan = default_plan()
    zones = plan.zone_names
    db.resume(STORE, day.timestamp(), plan_json(plan, 5.0))
    rng = np.random.default_rng(0)
    rows = 0
    start = int(day.timestamp())
    for number, first in enumerate(range(start, start + 86400, 600), start=1):
        tally = Tally()
        frames: Counter[tuple[int, str]] = Counter()
        for win in range(first, first + 600, 60):
            for z in zones:
                tally.dwell[(win, z)] += float(rng.uniform(0, 600))
                tally.visits[(win, z)] += int(rng.integers(0, 20))
            cells = rng.choice(24 * 40, 300, replace=False)
            for cell in cells:
                tally.heat[(win, int(cell // 40), int(cell % 40))] += float(rng.uniform(0, 30))
            for _ in range(20):
                a, b = rng.choice(len(zones), 2, replace=False)
                tally.transitions[(win, zones[a], zones[b])] += 1
            tally.visitors[win] += int(rng.integers(5, 40))
            for c in range(CAMERAS):
                frames[(win, f"cam{c + 1}")] += 300
        rows += sum(len(t) for t in (tally.dwell, tally.visits, tally.heat, tally.transitions))
        rows += len(tally.visitors) + len(frames)
        db.write(STORE, Batch(number, first + 599.0, 0.0, tally, frames, Counter(), Counter(),
                              [], [], 0, 0, b""))  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="peopleflow-web-"))
    db = ResultsDB.open(f"sqlite:///{folder / 'day.sqlite'}")
    day = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    t = time.perf_counter()
    rows = fill(db, day)
    print(f"{rows} rows for a day of {CAMERAS} cameras in {time.perf_counter() - t:.0f} s")
    server = WebServer(create_app(StoreData(db, STORE)), WebOptions(port=0))
    url = server.start()
    hour = day.replace(hour=14).strftime("%Y-%m-%dT%H")
    paths = [f"api/{e}?period={p}" for p in ("today", f"hour:{hour}")
             for e in ("heatmap", "flows", "dwell", "visitors", "cameras")]  # fmt: skip
    times: dict[str, list[float]] = defaultdict(list)
    errors = Counter[str]()
    stop = time.monotonic() + args.seconds

    def client(k: int) -> None:
        n = k
        while time.monotonic() < stop:
            path = paths[n % len(paths)]
            n += 1
            began = time.perf_counter()
            try:
                with urllib.request.urlopen(url + path, timeout=30) as answer:
                    answer.read()
            except OSError as exc:
                errors[type(exc).__name__] += 1
                continue
            times[path.split("?")[0]].append(time.perf_counter() - began)

    started = time.perf_counter()
    workers = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    server.stop()
    db.close()
    every = np.concatenate([np.array(v) for v in times.values()]) * 1000
    body = {
        "clients": args.clients,
        "rows": rows,
        "requests": int(len(every)),
        "errors": dict(errors),
        "rps": round(len(every) / elapsed, 1),
        "p50_ms": round(float(np.percentile(every, 50)), 1),
        "p99_ms": round(float(np.percentile(every, 99)), 1),
        "p99_ms_by_endpoint": {
            k: round(float(np.percentile(np.array(v) * 1000, 99)), 1) for k, v in times.items()
        },
    }
    for key, value in body.items():
        print(f"  {key:20s} {value}")
    write_json(args.json, body)


if __name__ == "__main__":
    main()
