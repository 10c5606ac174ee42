"""A synthetic store's shoppers: who walks where and when, as ground truth on the floor plan.

The default store is 20 x 12 m: an entrance by the door, four aisles, a promotion table and
a checkout. Shoppers arrive at random over the run, visit one to four aisles or the
promotion table (walking at 0.9-1.4 m/s, then browsing a while in place), pay at the checkout
and leave by the door. Positions are sampled at the cameras' frame rate. Rendering these
shoppers into camera views is the generator's job; this module is the truth it renders and
that the pipeline's results are scored against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from peopleflow.analytics import FloorTrack
from peopleflow.config import FloorPlan, Zone

DOOR = np.array([1.5, 0.3])


def _rect(name: str, x0: float, y0: float, x1: float, y1: float, door: bool = False) -> Zone:
    return Zone(name, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64), door)


def default_plan() -> FloorPlan:
    """The default synthetic store (metres; the door is at the bottom left)."""
    return FloorPlan(
        20.0,
        12.0,
        (
            _rect("entrance", 0.0, 0.0, 3.5, 3.0, door=True),
            _rect("aisle 1", 5.0, 3.0, 7.0, 11.0),
            _rect("aisle 2", 8.5, 3.0, 10.5, 11.0),
            _rect("aisle 3", 12.0, 3.0, 14.0, 11.0),
            _rect("aisle 4", 15.5, 3.0, 17.5, 11.0),
            _rect("promotion", 9.0, 0.5, 13.0, 2.5),
            _rect("checkout", 0.5, 7.0, 3.5, 11.0),
        ),
    )


@dataclass(frozen=True)
class Shopper:
    id: int
    track: FloorTrack  # sampled positions while inside the store (and the run)
    height: float  # metres, for rendering
    colours: tuple[tuple[int, int, int], tuple[int, int, int]]  # torso, legs (BGR)


def simulate(
    plan: FloorPlan | None = None,
    shoppers: int = 40,
    seconds: float = 120.0,
    fps: float = 10.0,
    seed: int = 0,
) -> list[Shopper]:
    """``shoppers`` walking through ``plan`` over ``seconds``, sampled at ``fps``."""
    plan = plan or default_plan()
    rng = np.random.default_rng(seed)
    zones = {z.name: z for z in plan.zones}
    browse = [z for z in plan.zone_names if z not in ("entrance", "checkout")]
    out = []
    for i in range(shoppers):
        start = float(rng.uniform(0.0, seconds * 0.7))
        route = [DOOR, _inside(zones["entrance"], rng)]
        stays = [0.0, float(rng.uniform(1.0, 4.0))]
        for name in rng.choice(browse, size=int(rng.integers(1, 5)), replace=False):
            route.append(_inside(zones[str(name)], rng))
            stays.append(float(rng.uniform(8.0, 40.0)))
        route.append(_inside(zones["checkout"], rng))
        stays.append(float(rng.uniform(10.0, 30.0)))
        route.append(DOOR)
        stays.append(0.0)
        t, xy = _walk(route, stays, float(rng.uniform(0.9, 1.4)), start, fps, rng)
        keep = t < seconds
        torso = tuple(int(c) for c in rng.integers(20, 235, 3))
        legs = tuple(int(c) for c in rng.integers(10, 120, 3))
        out.append(
            Shopper(
                i,
                FloorTrack(i, t[keep], xy[keep]),
                float(rng.uniform(1.55, 1.90)),
                (torso, legs),  # type: ignore[arg-type]
            )
        )
    return out


def _inside(zone: Zone, rng: np.random.Generator) -> np.ndarray:
    lo, hi = zone.polygon.min(axis=0), zone.polygon.max(axis=0)
    margin = np.minimum(0.4, (hi - lo) / 4)
    while True:
        p = rng.uniform(lo + margin, hi - margin)
        if zone.contains(p)[0]:
            return np.asarray(p)


def _walk(
    route: list[np.ndarray],
    stays: list[float],
    speed: float,
    start: float,
    fps: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample a walk along ``route`` (staying ``stays[i]`` s at each point) at ``fps``."""
    # Key frames: (time, position); linear between them, small sway while browsing.
    times, points = [start], [route[0]]
    now = start
    for k in range(1, len(route)):
        now += float(np.linalg.norm(route[k] - route[k - 1])) / speed
        times.append(now)
        points.append(route[k])
        if stays[k] > 0:
            now += stays[k]
            times.append(now)
            points.append(route[k] + rng.normal(0, 0.15, 2))
    key_t, key_xy = np.array(times), np.array(points)
    t = np.arange(np.ceil(start * fps), np.floor(now * fps) + 1) / fps
    xy = np.c_[np.interp(t, key_t, key_xy[:, 0]), np.interp(t, key_t, key_xy[:, 1])]
    return t, xy
