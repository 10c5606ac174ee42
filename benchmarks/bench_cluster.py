"""Bridge benchmark: messages crossing nodes on a simulated two-node Ray cluster, one run.

    python benchmarks/bench_cluster.py --items 4000 --json out/bench_cluster.json

A source on node A yields detection-sized messages (a (32, 4) float32 box array, scores and a
camera name); a sink-side task on node B counts them. The same graph is then pinned to one
node, so the ratio says what crossing a node costs: the outbound batching, the bridge actor,
the inbound source. Both nodes run on this machine (``ray.cluster_utils.Cluster``), so the
network is loopback: a real cluster adds its wire time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import conveyor as cv  # noqa: E402
from bench_common import write_json  # noqa: E402
from conveyor.testing import simulated_cluster  # noqa: E402

ITEMS_ENV = "CONVEYOR_BENCH_ITEMS"


@dataclass
class Boxes:
    camera: str
    index: int
    boxes: np.ndarray
    scores: np.ndarray


@dataclass
class Count:
    index: int
    total: int


def _items() -> int:
    import os

    return int(os.environ.get(ITEMS_ENV, "2000"))


@cv.source(node="bench-a")
def detections() -> Iterator[Boxes]:
    rng = np.random.default_rng(0)
    boxes = rng.random((32, 4), dtype=np.float32)
    scores = rng.random(32, dtype=np.float32)
    for i in range(_items()):
        yield Boxes(f"cam{i % 16}", i, boxes, scores)


class Counter:
    """Boxes seen so far (state that stays on one node)."""

    def __init__(self) -> None:
        self.total = 0

    def __call__(self, b: Boxes) -> Count:
        self.total += len(b.boxes)
        return Count(b.index, self.total)


# The same counter placed on the source's node, or on the other one.
COUNTER = cv.task(Counter).spec  # type: ignore[attr-defined]
COUNT_HERE = replace(COUNTER, name="count_here", node="bench-a")
COUNT_THERE = replace(COUNTER, name="count_there", node="bench-b")


def main() -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    os.environ[ITEMS_ENV] = str(args.items)
    with simulated_cluster("bench-a", "bench-b"):
        rows = {}
        for label, counter in (("one node", COUNT_HERE), ("across nodes", COUNT_THERE)):
            graph = cv.Graph([detections, counter])
            cv.run(graph, backend="ray", collect=[counter.name])  # warm: actors, imports
            start = time.perf_counter()
            result = cv.run(graph, backend="ray", collect=[counter.name])
            seconds = time.perf_counter() - start
            got = result.outputs[counter.name]
            assert len(got) == args.items and got[-1].total == 32 * args.items
            rows[label] = {"seconds": seconds, "items_per_s": args.items / seconds}
        ratio = rows["across nodes"]["items_per_s"] / rows["one node"]["items_per_s"]
        print(f"{'':<14}{'items/s':>10}{'seconds':>10}")
        for label, row in rows.items():
            print(f"{label:<14}{row['items_per_s']:>10.0f}{row['seconds']:>10.2f}")
        print(f"across / one node: {ratio:.2f}  ({args.items} messages of 32 boxes)")
        if args.json:
            write_json(args.json, {"items": args.items, **rows, "cross_node_vs_one_node": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
