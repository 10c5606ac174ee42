"""What the retailer reads: dwell heat map, zone dwell and visits, flows between zones, visitors.

Input: tracks on the floor plan (an id, times, positions in metres), from the pipeline or from
ground truth; the same functions measure both, so ``accuracy`` compares like with like.

- **Heat map**: seconds spent in each ``cell`` x ``cell`` metre square of the floor, each
  sample spread by a Gaussian kernel of ``smooth`` metres (a kernel density map, the usual
  heat map): a position from a camera is known to a few tenths of a metre, and the map
  should show where time is spent, not that jitter. The total time is unchanged.
- **Zone dwell**: seconds spent in each zone, in total and by hour of the day.
- **Visits**: a stay in a zone of at least ``min_visit`` seconds (shorter ones are someone
  passing by, or tracking jitter along an edge), timed from where the track crossed the
  zone's edge in to where it crossed out, between frames. A door is visited by walking
  through it, however briefly.
- **Transitions** (the flow map): consecutive visits of one person, zone A then zone B.
- **Visitors**: distinct track ids.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from peopleflow.config import MIN_VISIT, FloorPlan, Zone

MAX_STEP = 1.0  # seconds: a gap longer than this in a track counts as absence, not dwell
HEATMAP_SMOOTHING = 0.5  # metres: the heat map's kernel (standard deviation)


@dataclass
class FloorTrack:
    """One person on the floor plan: ``t`` seconds (n,), ``xy`` metres (n, 2)."""

    id: int
    t: np.ndarray
    xy: np.ndarray

    def __post_init__(self) -> None:
        self.t = np.asarray(self.t, dtype=np.float64)
        self.xy = np.asarray(self.xy, dtype=np.float64).reshape(-1, 2)
        if len(self.t) != len(self.xy):
            raise ValueError(f"track {self.id}: {len(self.t)} times for {len(self.xy)} points")


@dataclass
class Report:
    cell: float
    heatmap: np.ndarray  # (rows, cols) seconds; row 0 is y in [0, cell)
    zone_dwell: dict[str, float]
    zone_dwell_by_hour: dict[str, dict[int, float]]
    visits: dict[str, int]
    transitions: dict[tuple[str, str], int]
    visitors: int
    extra: dict[str, float] = field(default_factory=dict)
    smooth: float = 0.0  # metres: the heat map's Gaussian kernel
    min_visit: float = MIN_VISIT  # seconds in a zone that made a visit
    # how many identities were made, kept and dropped, and why (``peopleflow.evidence``)
    identities: dict[str, float | int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "visitors": self.visitors,
            "zone_dwell_s": {k: round(v, 2) for k, v in self.zone_dwell.items()},
            "zone_dwell_by_hour_s": {
                k: {str(h): round(s, 2) for h, s in v.items()}
                for k, v in self.zone_dwell_by_hour.items()
            },
            "zone_visits": self.visits,
            "visit_min_s": self.min_visit,
            "transitions": [
                {"from": a, "to": b, "count": n} for (a, b), n in sorted(self.transitions.items())
            ],
            "heatmap_cell_m": self.cell,
            "heatmap_smoothing_m": self.smooth,
            **({"identities": self.identities} if self.identities else {}),
            **self.extra,
        }


def dwell_weights(t: np.ndarray) -> np.ndarray:
    """Seconds each sample stands for: the time to the next sample, capped at ``MAX_STEP``."""
    if len(t) == 0:
        return np.zeros(0)
    steps = np.diff(t)
    typical = float(np.median(steps)) if len(steps) else 0.1
    return np.minimum(np.append(steps, typical), MAX_STEP)


def analyse(
    tracks: list[FloorTrack],
    plan: FloorPlan,
    cell: float = 0.5,
    min_visit: float = MIN_VISIT,
    start_hour: float = 0.0,
    smooth: float = HEATMAP_SMOOTHING,
) -> Report:
    """Everything in the report, from ``tracks`` (``start_hour``: the clock hour at t=0)."""
    rows, cols = int(np.ceil(plan.height / cell)), int(np.ceil(plan.width / cell))
    heat = np.zeros((rows, cols))
    names = plan.zone_names
    dwell = dict.fromkeys(names, 0.0)
    by_hour: dict[str, dict[int, float]] = {n: {} for n in names}
    visits: Counter[str] = Counter()
    transitions: Counter[tuple[str, str]] = Counter()
    for track in tracks:
        if len(track.t) == 0:
            continue
        w = dwell_weights(track.t)
        r = np.clip((track.xy[:, 1] / cell).astype(int), 0, rows - 1)
        c = np.clip((track.xy[:, 0] / cell).astype(int), 0, cols - 1)
        np.add.at(heat, (r, c), w)
        zone = plan.zone_of(track.xy)
        hours = (start_hour + track.t / 3600.0).astype(int)
        for i, name in enumerate(names):
            inside = zone == i
            dwell[name] += float(w[inside].sum())
            for h in np.unique(hours[inside]):
                by_hour[name][int(h)] = by_hour[name].get(int(h), 0.0) + float(
                    w[inside & (hours == h)].sum()
                )
        sequence = [z for z, _ in visits_of(zone, w, min_visit, track.t, track.xy, plan)]
        for z in sequence:
            visits[names[z]] += 1
        for a, b in zip(sequence, sequence[1:], strict=False):
            transitions[(names[a], names[b])] += 1
    if smooth > 0:
        from scipy.ndimage import gaussian_filter

        heat = gaussian_filter(heat, smooth / cell, mode="reflect")  # reflect keeps the total
    return Report(
        cell,
        heat,
        dwell,
        by_hour,
        dict(visits),
        dict(transitions),
        len({t.id for t in tracks}),
        smooth=smooth,
        min_visit=min_visit,
    )


def visits_of(
    zone: np.ndarray,
    w: np.ndarray,
    min_visit: float,
    t: np.ndarray,
    xy: np.ndarray,
    plan: FloorPlan,
) -> list[tuple[int, int]]:
    """The zones a track stayed in for ``min_visit`` s or more (a door: at all), in order,
    repeats merged, each with the index of the sample its stay began at.

    A stay is timed from the moment the track crossed into the zone to the moment it crossed
    out, each found on the straight line between the samples either side of the zone's edge,
    not in whole frames: crossing a 2 m aisle takes about 2 s at walking pace, and at 2 frames
    per second, whole frames would make such a crossing a visit or not by the frames' phase."""
    out: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(zone) + 1):
        if i == len(zone) or zone[i] != zone[start]:
            z = int(zone[start])
            if z >= 0 and (not out or out[-1][0] != z):
                area = plan.zones[z]
                stay = float(w[start:i].sum())
                stay += _edge(t, xy, start - 1, start, area) - _edge(t, xy, i - 1, i, area)
                if stay >= min_visit or area.door:
                    out.append((z, start))
            start = i
    return out


def _edge(t: np.ndarray, xy: np.ndarray, a: int, b: int, zone: Zone, steps: int = 8) -> float:
    """Seconds from the zone's edge to sample ``b`` along the step a -> b (one inside, one
    out), by bisection; 0 where there is no such step (the track begins or ends, or a gap)."""
    if a < 0 or b >= len(t) or t[b] - t[a] > MAX_STEP + 1e-9:
        return 0.0
    inside_a = bool(zone.contains(xy[a][None])[0])
    lo, hi = 0.0, 1.0  # fraction along a -> b; the crossing lies between
    for _ in range(steps):
        mid = (lo + hi) / 2
        if bool(zone.contains((xy[a] + mid * (xy[b] - xy[a]))[None])[0]) == inside_a:
            lo = mid
        else:
            hi = mid
    return float((1 - (lo + hi) / 2) * (t[b] - t[a]))


def accuracy(estimated: Report, truth: Report) -> dict[str, float]:
    """How far ``estimated`` is from ``truth`` (the issue's accuracy summary)."""
    a, b = estimated.heatmap.ravel(), truth.heatmap.ravel()
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0
    zones = [z for z, s in truth.zone_dwell.items() if s > 0]
    dwell_err = (
        float(
            np.mean(
                [
                    abs(estimated.zone_dwell.get(z, 0.0) - truth.zone_dwell[z])
                    / truth.zone_dwell[z]
                    for z in zones
                ]
            )
        )
        if zones
        else 0.0
    )
    visitors_err = abs(estimated.visitors - truth.visitors) / max(truth.visitors, 1)
    pairs = set(truth.transitions) | set(estimated.transitions)
    moved = sum(truth.transitions.values())
    trans_err = sum(
        abs(estimated.transitions.get(p, 0) - truth.transitions.get(p, 0)) for p in pairs
    ) / max(moved, 1)
    return {
        "heatmap_correlation": round(corr, 4),
        "zone_dwell_error": round(dwell_err, 4),
        "visitors_error": round(visitors_err, 4),
        "transition_error": round(trans_err, 4),
    }
