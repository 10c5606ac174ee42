"""Who was who: the report's people from the pipeline's per-instant observations.

One path for the batch report (``app.store_report``) and the live service
(``peopleflow.recorder``): observations as flat arrays -> people (relinked over the
observations given, or the live tracker's identities) -> the noise filter
(``peopleflow.evidence``) -> floor tracks with short hidden spells filled in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from peopleflow.analytics import FloorTrack
from peopleflow.config import Zone
from peopleflow.coverage import Coverage
from peopleflow.evidence import MIN_TRACK_SECONDS, Verdict, judge
from peopleflow.relink import Person, relink_people
from peopleflow.track import LOOK_SIZE

FILL_GAPS_SECONDS = 10.0  # an identity unseen this long (hidden, then recognised) was there
# An identity seen at about the same spot before and after a longer hidden spell stood there:
# in a crowd (at a promotion table, in a queue) a standing shopper is detected in about half of
# the instants and can be hidden for tens of seconds. On the tuning stores the mean of
# (1 - heat-map correlation) and the three errors went 0.441 -> 0.381 (dwell at the promotion
# tables and checkouts); a minute or two, within 1-2 m, all gave 0.37-0.39.
STANDING_GAP_SECONDS = 60.0
STANDING_NEAR = 1.2  # metres: two places of one standing person (each may be off by ~0.5 m)
# Someone seen standing still just before a hidden spell (or just after it), and elsewhere at
# its other end, stood where they were until they had to walk there at a shopper's pace (or
# walked, then stood): not a slow straight walk over the whole spell, nor, past 10 s, nothing.
# In a crowd such spells are common (people at a promotion table are hidden and found again
# tens of seconds later, often by another identity's continuation). On the seven tuning stores
# the mean of (1 - correlation) and the three errors went 0.466 -> 0.449 (dwell 0.091 ->
# 0.085), no store worse; pace 1.0-1.5 m/s and stillness over 3-6 s within 0.6-1.0 m: 0.447-0.458.
WALKING_PACE = 1.2  # m/s
STILL_SECONDS = 4.0  # seconds seen at about one spot (at least 60% of them covered) ...
STILL_NEAR = 0.6  # ... within this many metres of the spot: standing still


@dataclass(frozen=True)
class Observations:
    """Every person seen at every instant, flat: time, live identity, place and look."""

    t: np.ndarray  # (n,) seconds
    ids: np.ndarray  # (n,) int64: the live tracker's identity
    xy: np.ndarray  # (n, 2) metres
    looks: np.ndarray | None  # (n, LOOK_SIZE) float32, or None when the instants had none

    @classmethod
    def of(cls, instants: Sequence[Any]) -> Observations:
        """From the pipeline's ``FloorPeople`` (or anything with ts, ids, xy and maybe looks)."""
        ordered = sorted(instants, key=lambda i: float(i.ts))
        if not ordered:
            return cls.empty()
        t = np.concatenate([np.full(len(i.ids), float(i.ts)) for i in ordered])
        ids = np.concatenate([np.asarray(i.ids, np.int64).reshape(-1) for i in ordered])
        xy = np.concatenate([np.asarray(i.xy, np.float64).reshape(-1, 2) for i in ordered])
        looks = None
        if all(getattr(i, "looks", None) is not None for i in ordered):
            looks = np.concatenate(
                [np.asarray(i.looks, np.float32).reshape(len(i.ids), LOOK_SIZE) for i in ordered]
            )
        return cls(t, ids, xy, looks)

    @classmethod
    def empty(cls) -> Observations:
        return cls(np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 2)), None)

    def __len__(self) -> int:
        return len(self.t)

    def take(self, index: np.ndarray) -> Observations:
        looks = self.looks[index] if self.looks is not None else None
        return Observations(self.t[index], self.ids[index], self.xy[index], looks)

    def concat(self, other: Observations) -> Observations:
        if not len(self):
            return other
        if not len(other):
            return self
        looks = None
        if self.looks is not None and other.looks is not None:
            looks = np.concatenate([self.looks, other.looks])
        return Observations(
            np.r_[self.t, other.t], np.r_[self.ids, other.ids], np.r_[self.xy, other.xy], looks
        )


@dataclass
class People:
    """The report's identities: the tracks kept, and what the noise filter decided."""

    tracks: list[FloorTrack]
    verdict: Verdict


def people_of(obs: Observations, relinked: bool, doors: tuple[Zone, ...] = ()) -> list[Person]:
    """Who is who among ``obs``: decided again over them (``peopleflow.relink``), or the live
    tracker's identities when ``relinked`` is off or there are no looks."""
    if relinked and obs.looks is not None:
        return relink_people(obs.t, obs.xy, obs.looks, doors)
    out = []
    for pid in np.unique(obs.ids):
        members = np.flatnonzero(obs.ids == pid)
        members = members[np.argsort(obs.t[members], kind="stable")]
        times, first = np.unique(obs.t[members], return_index=True)
        out.append(Person(members, times, obs.xy[members[first]]))
    return sorted(out, key=lambda p: float(p.t[0]))


def kept_tracks(
    people: list[Person],
    step: float,
    coverage: Coverage,
    min_seconds: float = MIN_TRACK_SECONDS,
    fill_gaps: float = FILL_GAPS_SECONDS,
    prior_rates: Sequence[float] = (),
    first_id: int = 0,
    fill_standing: float = STANDING_GAP_SECONDS,
) -> People:
    """The people the noise filter keeps, as floor tracks numbered from ``first_id``, their
    hidden spells filled in (``filled``). ``prior_rates``: detection rates of identities
    judged before (the live service's)."""
    verdict = judge([(p.t, p.xy) for p in people], step, coverage, min_seconds, prior_rates)
    tracks = [
        filled(FloorTrack(first_id + n, people[i].t, people[i].xy), fill_gaps, fill_standing)
        for n, i in enumerate(verdict.kept)
    ]
    return People(tracks, verdict)


def frame_step(t: np.ndarray) -> float:
    """The usual time between instants."""
    ts = np.unique(t)
    return float(np.median(np.diff(ts))) if len(ts) > 1 else 1.0


def filled(
    track: FloorTrack,
    longest: float,
    standing: float = STANDING_GAP_SECONDS,
    near: float = STANDING_NEAR,
) -> FloorTrack:
    """A person hidden for a while (behind a shelf, in a crowd) and recognised afterwards was
    there all along, at the frame rate, so that their dwell is counted: gaps up to ``longest``
    seconds are filled by walking in a straight line; up to ``standing`` seconds where they
    were seen again within ``near`` metres of where they were lost (they stood there); and up to
    ``standing`` seconds where they stood still at one end of the gap, by standing there and
    walking the rest at ``WALKING_PACE`` (``_stood_then_walked``)."""
    t, xy = track.t, track.xy
    if len(t) < 3 or max(longest, standing) <= 0:
        return track
    step = float(np.median(np.diff(t)))
    times, points = [t[:1]], [xy[:1]]
    for k in range(1, len(t)):
        gap = t[k] - t[k - 1]
        if gap > 1.5 * step:
            moved = float(np.linalg.norm(xy[k] - xy[k - 1]))
            f = np.arange(1, round(gap / step)) / round(gap / step)
            share = None  # of the way walked at each filled instant
            walk = moved / WALKING_PACE  # seconds the way takes (over 0 past ``near``)
            if gap <= standing and moved <= near:
                share = f
            elif gap <= standing and walk < gap:
                share = _stood_then_walked(t, xy, k, f * gap, walk)
            if share is None and gap <= longest:
                share = f
            if share is not None:
                times.append(t[k - 1] + f * gap)
                points.append(xy[k - 1] + share[:, None] * (xy[k] - xy[k - 1]))
        times.append(t[k : k + 1])
        points.append(xy[k : k + 1])
    return FloorTrack(track.id, np.concatenate(times), np.concatenate(points))


def _stood_then_walked(
    t: np.ndarray, xy: np.ndarray, k: int, since: np.ndarray, walk: float
) -> np.ndarray | None:
    """For the gap before sample ``k``: the share of the way walked ``since`` seconds into it,
    standing first where they stood still before it, or walking first where they stood still
    after it (``walk``: the seconds the way takes); None if they stood still at neither end."""
    gap = t[k] - t[k - 1]
    if _still(t, xy, k - 1, before=True):
        return np.asarray(np.clip((since - (gap - walk)) / walk, 0.0, 1.0))
    if _still(t, xy, k, before=False):
        return np.asarray(np.clip(since / walk, 0.0, 1.0))
    return None


def _still(t: np.ndarray, xy: np.ndarray, k: int, before: bool) -> bool:
    """Did the track stand still (within ``STILL_NEAR`` of sample ``k``) for the
    ``STILL_SECONDS`` before sample ``k`` (or after it), seen at three instants or more?"""
    lo, hi = (t[k] - STILL_SECONDS, t[k]) if before else (t[k], t[k] + STILL_SECONDS)
    # ``t`` is in time order: the span is a slice (a search, not a pass over the whole track
    # for every gap: an hour's track in a crowd has hundreds)
    span = slice(int(np.searchsorted(t, lo, "left")), int(np.searchsorted(t, hi, "right")))
    seen = t[span]
    if len(seen) < 3 or seen[-1] - seen[0] < 0.6 * STILL_SECONDS:
        return False
    return float(np.max(np.linalg.norm(xy[span] - xy[k], axis=1))) <= STILL_NEAR
