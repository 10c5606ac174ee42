"""A synthetic store's shoppers: who walks where and when, as ground truth on the floor plan.

The default store is 20 x 12 m: an entrance by the door, four aisles, a promotion table and
a checkout. Shoppers arrive at random over the run, visit one to four aisles or the
promotion table (walking at 0.9-1.4 m/s, then browsing a while in place), pay at the checkout
and leave by the door. Positions are sampled at the cameras' frame rate. Rendering these
shoppers into camera views is the generator's job; this module is the truth it renders and
that the pipeline's results are scored against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from peopleflow.analytics import FloorTrack
from peopleflow.config import FloorPlan, Zone

DOOR = np.array([1.5, 0.3])


def rect_zone(name: str, x0: float, y0: float, x1: float, y1: float, door: bool = False) -> Zone:
    return Zone(name, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64), door)


def default_plan() -> FloorPlan:
    """The default synthetic store (metres; the door is at the bottom left)."""
    return FloorPlan(
        20.0,
        12.0,
        (
            rect_zone("entrance", 0.0, 0.0, 3.5, 3.0, door=True),
            rect_zone("aisle 1", 5.0, 3.0, 7.0, 11.0),
            rect_zone("aisle 2", 8.5, 3.0, 10.5, 11.0),
            rect_zone("aisle 3", 12.0, 3.0, 14.0, 11.0),
            rect_zone("aisle 4", 15.5, 3.0, 17.5, 11.0),
            rect_zone("promotion", 9.0, 0.5, 13.0, 2.5),
            rect_zone("checkout", 0.5, 7.0, 3.5, 11.0),
        ),
    )


@dataclass(frozen=True)
class Shopper:
    id: int
    track: FloorTrack  # sampled positions while inside the store (and the run)
    height: float  # metres, for rendering
    colours: tuple[tuple[int, int, int], tuple[int, int, int]]  # torso, legs (BGR)


@dataclass(frozen=True)
class Crowd:
    """What the shoppers are like beyond their number (the defaults: the tuning stores')."""

    lookalikes: float = 0.0  # the share dressed alike, in dark clothes
    standing: int = 0  # more people who stand 1-3 minutes at the promotion table or checkout


def simulate(
    plan: FloorPlan | None = None,
    shoppers: int = 40,
    seconds: float = 120.0,
    fps: float = 10.0,
    seed: int = 0,
    doors: Sequence[np.ndarray] = (DOOR,),
    crowd: Crowd = Crowd(),
) -> list[Shopper]:
    """``shoppers`` walking through ``plan`` over ``seconds``, sampled at ``fps``, coming in
    and going out by ``doors`` (a wall point per door zone of ``plan``, in its order)."""
    plan = plan or default_plan()
    if len(doors) != len(plan.doors) or not doors:
        raise ValueError(f"{len(doors)} door points for {len(plan.doors)} door zones")
    rng = np.random.default_rng(seed)
    # The default crowd draws nothing from this one: a tuning store stays what it was.
    extra = np.random.default_rng([seed, 1])
    zones = {z.name: z for z in plan.zones}
    entries = [z.name for z in plan.doors]
    browse = [z for z in plan.zone_names if z not in entries and z != "checkout"]
    out = []
    for i in range(shoppers):
        way_in = int(extra.integers(len(doors))) if len(doors) > 1 else 0
        way_out = int(extra.integers(len(doors))) if len(doors) > 1 else 0
        start = float(rng.uniform(0.0, seconds * 0.7))
        route = [doors[way_in], _inside(zones[entries[way_in]], rng)]
        stays = [0.0, float(rng.uniform(1.0, 4.0))]
        visits = min(int(rng.integers(1, 5)), len(browse))  # a small store has few zones
        for name in rng.choice(browse, size=visits, replace=False):
            route.append(_inside(zones[str(name)], rng))
            stays.append(float(rng.uniform(8.0, 40.0)))
        route.append(_inside(zones["checkout"], rng))
        stays.append(float(rng.uniform(10.0, 30.0)))
        route.append(doors[way_out])
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
    for _ in range(crowd.standing):
        out.append(_stander(len(out), plan, doors, entries, seconds, fps, extra))
    for k in np.flatnonzero(extra.random(len(out)) < crowd.lookalikes):
        out[k] = replace(out[k], colours=_dark_clothes(extra))
    return out


def _stander(
    ident: int,
    plan: FloorPlan,
    doors: Sequence[np.ndarray],
    entries: list[str],
    seconds: float,
    fps: float,
    rng: np.random.Generator,
) -> Shopper:
    """Someone who walks in and stands 1-3 minutes at the promotion table or the checkout
    (a queue, a demonstration), then leaves."""
    zones = {z.name: z for z in plan.zones}
    door = int(rng.integers(len(doors)))
    spot = str(rng.choice([z for z in ("promotion", "checkout") if z in zones]))
    route = [
        doors[door],
        _inside(zones[entries[door]], rng),
        _inside(zones[spot], rng),
        doors[door],
    ]
    stays = [0.0, 1.0, float(rng.uniform(60.0, 180.0)), 0.0]
    start = float(rng.uniform(0.0, seconds * 0.3))
    t, xy = _walk(route, stays, float(rng.uniform(0.9, 1.4)), start, fps, rng)
    keep = t < seconds
    torso = tuple(int(c) for c in rng.integers(20, 235, 3))
    legs = tuple(int(c) for c in rng.integers(10, 120, 3))
    return Shopper(
        ident,
        FloorTrack(ident, t[keep], xy[keep]),
        float(rng.uniform(1.55, 1.90)),
        (torso, legs),  # type: ignore[arg-type]
    )


def _dark_clothes(rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Dark top and trousers, a few levels from everyone else's in the same clothes."""
    base = rng.integers(28, 48)
    torso = tuple(int(base + c) for c in rng.integers(-6, 7, 3))
    legs = tuple(int(max(10, base - 12 + c)) for c in rng.integers(-5, 6, 3))
    return torso, legs  # type: ignore[return-value]


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
