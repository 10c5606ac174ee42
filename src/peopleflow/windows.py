"""What final people add to each time window: the live service's unit of results.

A window is ``window`` seconds of wall-clock time (1 minute by default), named by its start in
epoch seconds. A person's track (epoch seconds, floor metres) adds, to the window each part of
it falls in: dwell per zone and heat-map cell (the seconds each sample stands for), a visit to
the window its stay began in, a transition to the window the second stay began in, and one
visitor to the window they were first seen in. The same functions as the batch report
(``peopleflow.analytics``), so a ``Tally`` summed over any period gives that period's report
(``to_report``), however the period cuts the windows people were counted in.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from peopleflow.analytics import (
    HEATMAP_SMOOTHING,
    FloorTrack,
    Report,
    dwell_weights,
    visits_of,
)
from peopleflow.config import MIN_VISIT, FloorPlan

WINDOW_SECONDS = 60
HEAT_CELL = 0.5  # metres: the heat map's cells, as the batch report's


@dataclass
class Tally:
    """Per-window sums; keys start with the window's start (epoch seconds)."""

    dwell: defaultdict[tuple[int, str], float] = field(
        default_factory=lambda: defaultdict(float)
    )  # seconds per zone
    heat: defaultdict[tuple[int, int, int], float] = field(
        default_factory=lambda: defaultdict(float)
    )  # seconds per cell
    visits: Counter[tuple[int, str]] = field(default_factory=Counter)
    transitions: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    visitors: Counter[int] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        for zone_key, seconds in other.dwell.items():
            self.dwell[zone_key] += seconds
        for cell_key, seconds in other.heat.items():
            self.heat[cell_key] += seconds
        self.visits.update(other.visits)
        self.transitions.update(other.transitions)
        self.visitors.update(other.visitors)

    def windows(self) -> set[int]:
        keys: set[int] = set(self.visitors)
        for table in (self.dwell, self.heat, self.visits, self.transitions):
            keys.update(k[0] for k in table)
        return keys


def tally(
    tracks: list[FloorTrack],
    plan: FloorPlan,
    window: int = WINDOW_SECONDS,
    min_visit: float = MIN_VISIT,
) -> Tally:
    """What ``tracks`` (epoch seconds) add to each window."""
    out = Tally()
    rows, cols = _heat_shape(plan)
    names = plan.zone_names
    for track in tracks:
        if len(track.t) == 0:
            continue
        win = (np.floor(track.t / window) * window).astype(np.int64)
        w = dwell_weights(track.t)
        zone = plan.zone_of(track.xy)
        r = np.clip((track.xy[:, 1] / HEAT_CELL).astype(int), 0, rows - 1)
        c = np.clip((track.xy[:, 0] / HEAT_CELL).astype(int), 0, cols - 1)
        for key, seconds in _sums(np.c_[win, r, c], w):
            out.heat[(key[0], key[1], key[2])] += seconds
        inside = zone >= 0
        for key, seconds in _sums(np.c_[win[inside], zone[inside]], w[inside]):
            out.dwell[(key[0], names[key[1]])] += seconds
        visits = visits_of(zone, w, min_visit, track.t, track.xy, plan)
        for z, start in visits:
            out.visits[(int(win[start]), names[z])] += 1
        for (a, _), (b, start) in zip(visits, visits[1:], strict=False):
            out.transitions[(int(win[start]), names[a], names[b])] += 1
        out.visitors[int(win[0])] += 1
    return out


def to_report(
    t: Tally,
    plan: FloorPlan,
    hour_of: Callable[[int], int],
    min_visit: float = MIN_VISIT,
    smooth: float = HEATMAP_SMOOTHING,
) -> Report:
    """The report of everything in ``t`` (``hour_of``: a window start's hour of the day)."""
    rows, cols = _heat_shape(plan)
    heat = np.zeros((rows, cols))
    for (_, r, c), seconds in t.heat.items():
        heat[r, c] += seconds
    if smooth > 0:
        from scipy.ndimage import gaussian_filter

        heat = gaussian_filter(heat, smooth / HEAT_CELL, mode="reflect")  # keeps the total
    dwell = dict.fromkeys(plan.zone_names, 0.0)
    by_hour: dict[str, dict[int, float]] = {n: {} for n in plan.zone_names}
    for (win, zone), seconds in t.dwell.items():
        dwell[zone] = dwell.get(zone, 0.0) + seconds
        hours = by_hour.setdefault(zone, {})
        hours[hour_of(win)] = hours.get(hour_of(win), 0.0) + seconds
    visits: Counter[str] = Counter()
    for (_, zone), n in t.visits.items():
        visits[zone] += n
    transitions: Counter[tuple[str, str]] = Counter()
    for (_, a, b), n in t.transitions.items():
        transitions[(a, b)] += n
    return Report(
        HEAT_CELL,
        heat,
        dwell,
        by_hour,
        dict(visits),
        dict(transitions),
        sum(t.visitors.values()),
        smooth=smooth,
        min_visit=min_visit,
    )


def _heat_shape(plan: FloorPlan) -> tuple[int, int]:
    return int(np.ceil(plan.height / HEAT_CELL)), int(np.ceil(plan.width / HEAT_CELL))


def _sums(keys: np.ndarray, values: np.ndarray) -> list[tuple[tuple[int, ...], float]]:
    """``values`` summed per distinct row of ``keys`` (integers)."""
    if len(keys) == 0:
        return []
    unique, inverse = np.unique(keys.astype(np.int64), axis=0, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=values, minlength=len(unique))
    return [(tuple(int(v) for v in k), float(s)) for k, s in zip(unique, sums, strict=True)]
