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
- **Transitions** (the flow map): consecutive visits of one person, zone A then zone B;
  except into a door visited mid-way (neither the track's first visit nor its last): people
  pass a door on the way in and out, so a track that goes on after one is, almost always, a
  newcomer joined onto someone lost inside, and only the move on from the door is counted.
- **Visitors**: one per track.

One path for a whole run and for the live service: ``tally`` adds each track to time windows
(a visit to the window its stay began in, a transition to the window of its second visit, a
visitor to the window of their first sighting, dwell and heat where each sample falls), and
``to_report`` sums any set of windows into a ``Report``. ``analyse`` is windows of an hour,
summed; the live service writes windows of a minute to its database and sums those for any
period (``peopleflow.period``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from peopleflow.config import MIN_VISIT, FloorPlan, Zone

WINDOW_SECONDS = 60  # the live service's results windows
HEAT_CELL = 0.5  # metres: the heat map's cells
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
    # each zone's share of floor some camera shows: what is out of view is not counted
    zones_in_view: dict[str, float] = field(default_factory=dict)

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
            **(
                {"zone_in_view_share": {k: round(v, 3) for k, v in self.zones_in_view.items()}}
                if self.zones_in_view
                else {}
            ),
            **self.extra,
        }


def dwell_weights(t: np.ndarray) -> np.ndarray:
    """Seconds each sample stands for: the time to the next sample, capped at ``MAX_STEP``."""
    if len(t) == 0:
        return np.zeros(0)
    steps = np.diff(t)
    typical = float(np.median(steps)) if len(steps) else 0.1
    return np.asarray(np.minimum(np.append(steps, typical), MAX_STEP))


def analyse(
    tracks: list[FloorTrack],
    plan: FloorPlan,
    min_visit: float = MIN_VISIT,
    start_hour: int = 0,
    smooth: float = HEATMAP_SMOOTHING,
) -> Report:
    """Everything in the report, from ``tracks`` (``start_hour``: the clock hour at t=0). The
    same path as a live service's report over any period: windows of an hour, summed."""
    hours = tally(tracks, plan, window=3600, min_visit=min_visit)
    return to_report(hours, plan, lambda w: start_hour + w // 3600, min_visit, smooth)


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
    """What ``tracks`` add to each ``window`` seconds long window (named by its start: the
    live service's are epoch seconds)."""
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
        for i, ((a, _), (b, start)) in enumerate(zip(visits, visits[1:], strict=False)):
            if plan.zones[b].door and i + 2 < len(visits):
                # A door visited mid-way is almost always where someone came in whom the
                # identities joined onto someone lost inside: the move from that one's zone
                # to the door was never made (the move on from the door is the newcomer's).
                continue
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
