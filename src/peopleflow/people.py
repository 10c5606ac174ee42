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
    there all along: gaps up to ``longest`` seconds, and up to ``standing`` seconds where they
    were seen again within ``near`` metres of where they were lost, are filled by walking in a
    straight line at the frame rate, so that their dwell is counted."""
    t, xy = track.t, track.xy
    if len(t) < 3 or max(longest, standing) <= 0:
        return track
    step = float(np.median(np.diff(t)))
    times, points = [t[:1]], [xy[:1]]
    for k in range(1, len(t)):
        gap = t[k] - t[k - 1]
        stood = gap <= standing and float(np.linalg.norm(xy[k] - xy[k - 1])) <= near
        if 1.5 * step < gap and (gap <= longest or stood):
            f = np.arange(1, round(gap / step)) / round(gap / step)
            times.append(t[k - 1] + f * gap)
            points.append(xy[k - 1] + f[:, None] * (xy[k] - xy[k - 1]))
        times.append(t[k : k + 1])
        points.append(xy[k : k + 1])
    return FloorTrack(track.id, np.concatenate(times), np.concatenate(points))
