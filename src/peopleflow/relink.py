"""The report's identities: who was who, decided again over the whole run.

The live ``FloorTracker`` must decide at each instant with only the past to go on, and in a
crowd one of its identities can hop from person to person (at 2 frames per second a shopper
moves 0.6 m between frames). The report is made after the run, so it can look at the whole
run. Each observation is a person at one instant: a place on the floor and a look (colour
histograms of torso and legs). Three steps:

1. **Tracklets.** The same person at consecutive instants, linked only where the link is
   unambiguous: near in place and look, and no rival nearly as good on either side. They are
   short and nearly pure.
2. **People.** Tracklets are joined, most alike first (their looks averaged over every frame
   in them, which is far steadier than one frame's look), wherever one person could have made
   both: where one hands over to the other, the two places are within walking reach, and
   where both saw someone at the same instant, they saw them in about the same place.
3. **Doors.** People come in and leave by a door. An identity that begins or ends away from
   every door, and not at the start or end of the video, is a piece of another one: it joins
   the most alike identity that it fits, with looser limits. Zones marked ``door = true`` in
   the store's configuration are doors; without any, this step is skipped.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from peopleflow.config import Zone
from peopleflow.track import LOOK_SIZE, appearance_distance


@dataclass(frozen=True)
class RelinkOptions:
    link: float = 0.9  # metres: the farthest a tracklet steps between instants
    link_look: float = 0.3  # the least alike a tracklet's consecutive looks may be
    rival: float = 0.3  # a link with a rival within this much cost is ambiguous: not made
    join_look: float = 0.3  # tracklets less alike than this are never joined
    speed: float = 3.0  # m/s: walking, plus the error of two floor positions
    reach: float = 1.0  # metres added to the walking reach
    together: float = 2.0  # metres: two cameras' places for one person at one instant
    misfit: float = 0.1  # share of hand-overs that may break the limits (a bad position)
    door_look: float = 0.35  # join_look for a piece that must belong to someone
    door_misfit: float = 0.2
    near_door: float = 1.0  # metres from a door's zone that still counts as at the door
    video_edge: float = 2.0  # seconds: an identity this near the start or end may begin or end
    window: float = 120.0  # seconds: pieces further apart in time are not compared (a long
    # run's pairs would grow as its square)


def relink(
    t: np.ndarray,
    xy: np.ndarray,
    looks: np.ndarray,
    doors: tuple[Zone, ...] = (),
    options: RelinkOptions | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Observations (times ``t`` (n,), places ``xy`` (n, 2), ``looks`` (n, 128)) grouped into
    people: each one's times and places, one place per instant, in time order."""
    return [(p.t, p.xy) for p in relink_people(t, xy, looks, doors, options)]


@dataclass(frozen=True)
class Person:
    """One person: which observations are theirs, and one place per instant, in time order."""

    members: np.ndarray  # indices into the observations given
    t: np.ndarray
    xy: np.ndarray


def relink_people(
    t: np.ndarray,
    xy: np.ndarray,
    looks: np.ndarray,
    doors: tuple[Zone, ...] = (),
    options: RelinkOptions | None = None,
) -> list[Person]:
    """``relink``, saying which observations each person is made of (the live service keeps
    the observations of people not yet final, and drops the rest)."""
    o = options or RelinkOptions()
    t, xy = np.asarray(t, np.float64), np.asarray(xy, np.float64).reshape(-1, 2)
    looks = np.asarray(looks, np.float32).reshape(len(t), LOOK_SIZE)
    if len(t) == 0:
        return []
    people = _People(t, xy, looks, _tracklets(t, xy, looks, o), o)
    people.join(o.join_look, o.misfit)
    if doors:
        people.join_pieces(doors, o)
    return [
        Person(np.sort(people.members[k]), *people.samples(k))
        for k in sorted(people.members, key=people.first)
    ]


def _tracklets(t: np.ndarray, xy: np.ndarray, looks: np.ndarray, o: RelinkOptions) -> np.ndarray:
    """A tracklet number for each observation."""
    from scipy.optimize import linear_sum_assignment

    label = np.full(len(t), -1)
    count = 0
    prev = np.zeros(0, int)
    for now in np.unique(t):
        cur = np.flatnonzero(t == now)
        if len(prev):
            dist = np.linalg.norm(xy[prev][:, None] - xy[cur][None], axis=2)
            unlike = appearance_distance(looks[prev], looks[cur])
            cost = np.where((dist <= o.link) & (unlike <= o.link_look), dist + unlike, np.inf)
            rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e6))
            for a, b in zip(rows, cols, strict=True):
                c = cost[a, b]
                if not np.isfinite(c):
                    continue
                rivals = np.r_[np.delete(cost[a], b), np.delete(cost[:, b], a)]
                if rivals.size and rivals.min() < c + o.rival:
                    continue  # two people close together: leave it to the joining step
                label[cur[b]] = label[prev[a]]
        for k in cur:
            if label[k] < 0:
                label[k], count = count, count + 1
        prev = cur
    return label


class _People:
    """Groups of tracklets, each one person; joined greedily, most alike first. A group keeps
    the number of its first tracklet; per-group arrays are indexed by it."""

    def __init__(
        self,
        t: np.ndarray,
        xy: np.ndarray,
        looks: np.ndarray,
        label: np.ndarray,
        o: RelinkOptions,
    ) -> None:
        self.t, self.xy, self.o = t, xy, o
        n = int(label.max()) + 1
        order = np.argsort(label, kind="stable")
        bounds = np.searchsorted(label[order], np.arange(n + 1))
        self.members: dict[int, np.ndarray] = {
            k: order[bounds[k] : bounds[k + 1]] for k in range(n)
        }  # observation indices
        self.weight = np.diff(bounds).astype(np.float64)
        self.look = np.stack([looks[m].mean(0) for m in self.members.values()])
        self.alive = np.ones(n, bool)
        self.version = np.zeros(n, int)
        self._samples = {k: self._place(m) for k, m in self.members.items()}
        self.start = np.array([self._samples[k][0][0] for k in range(n)])
        self.end = np.array([self._samples[k][0][-1] for k in range(n)])

    def first(self, k: int) -> float:
        return float(self.start[k])

    def samples(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._samples[k]

    def join(self, most_unlike: float, misfit: float) -> None:
        """Join groups, most alike first, wherever one person could have made both."""
        heap = [pair for a in range(len(self.alive)) for pair in self._pairs(a, most_unlike, True)]
        heapq.heapify(heap)
        while heap:
            _, a, b, va, vb = heapq.heappop(heap)
            if not (self.alive[a] and self.alive[b]):
                continue
            if self.version[a] != va or self.version[b] != vb:
                continue  # either changed since: its pairs were pushed again
            if not self._fits(a, b, misfit):
                continue
            self._merge(a, b)
            for pair in self._pairs(a, most_unlike):
                heapq.heappush(heap, pair)

    def _pairs(
        self, a: int, most_unlike: float, later_only: bool = False
    ) -> list[tuple[float, int, int, int, int]]:
        """``a``'s pairs with the groups near it in time and alike enough."""
        near = (
            self.alive
            & (self.start <= self.end[a] + self.o.window)
            & (self.end >= self.start[a] - self.o.window)
        )
        near[: a + 1 if later_only else 0] = False
        near[a] = False
        others = np.flatnonzero(near)
        if not len(others):
            return []
        d = appearance_distance(self.look[a][None], self.look[others])[0]
        keep = d <= most_unlike
        return [
            (float(dk), a, int(k), int(self.version[a]), int(self.version[k]))
            for k, dk in zip(others[keep], d[keep], strict=True)
        ]

    def join_pieces(self, doors: tuple[Zone, ...], o: RelinkOptions) -> None:
        """An identity that begins or ends away from every door is part of another one."""
        lo, hi = float(self.t.min()), float(self.t.max())

        def at_door(p: np.ndarray) -> bool:
            return any(
                bool(z.contains(p[None])[0])
                or float(np.min(np.linalg.norm(z.polygon - p, axis=1))) < o.near_door
                for z in doors
            )

        def piece(k: int) -> bool:
            ts, ps = self._samples[k]
            began = ts[0] - lo < o.video_edge or at_door(ps[0])
            ended = hi - ts[-1] < o.video_edge or at_door(ps[-1])
            return not (began and ended)

        joined = True
        while joined:  # passes, smallest pieces first, until one joins nothing
            joined = False
            for k in sorted(self.members, key=lambda k: len(self.members[k])):
                if not self.alive[k] or not piece(k):
                    continue
                near = (
                    self.alive
                    & (self.start <= self.end[k] + o.window)
                    & (self.end >= self.start[k] - o.window)
                )
                near[k] = False
                others = np.flatnonzero(near)
                d = appearance_distance(self.look[k][None], self.look[others])[0]
                for i in np.argsort(d):
                    if d[i] > o.door_look:
                        break
                    if self._fits(k, int(others[i]), o.door_misfit):
                        self._merge(int(others[i]), k)
                        joined = True
                        break

    def _fits(self, a: int, b: int, misfit: float) -> bool:
        """Could one person have made both? Check every hand-over between the two."""
        (ta, pa), (tb, pb) = self._samples[a], self._samples[b]
        ts, ps = np.r_[ta, tb], np.r_[pa, pb]
        src = np.r_[np.zeros(len(ta), bool), np.ones(len(tb), bool)]
        order = np.argsort(ts, kind="stable")
        ts, ps, src = ts[order], ps[order], src[order]
        hand = np.flatnonzero(src[1:] != src[:-1])
        if not len(hand):
            return True
        dt = ts[hand + 1] - ts[hand]
        moved = np.linalg.norm(ps[hand + 1] - ps[hand], axis=1)
        limit = np.where(dt < 1e-6, self.o.together, self.o.reach + self.o.speed * dt)
        return int((moved > limit).sum()) <= misfit * len(hand)

    def _merge(self, into: int, other: int) -> None:
        w1, w2 = self.weight[into], self.weight[other]
        self.look[into] = (self.look[into] * w1 + self.look[other] * w2) / (w1 + w2)
        self.weight[into] = w1 + w2
        self.members[into] = np.r_[self.members[into], self.members.pop(other)]
        self._samples[into] = self._place(self.members[into])
        del self._samples[other]
        self.alive[other] = False
        self.version[into] += 1
        self.start[into], self.end[into] = self._samples[into][0][[0, -1]]

    def _place(self, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One place per instant: the mean of the group's observations then, or where they
        disagree by over a metre, the one nearest the place before."""
        ts = self.t[members]
        order = np.argsort(ts, kind="stable")
        members, ts = members[order], ts[order]
        times, first = np.unique(ts, return_index=True)
        places: list[np.ndarray] = []
        for k, start in enumerate(first):
            end = first[k + 1] if k + 1 < len(first) else len(ts)
            pts = self.xy[members[start:end]]
            if len(pts) > 1 and np.ptp(pts, axis=0).max() > 1.0 and places:
                pts = pts[[int(np.argmin(np.linalg.norm(pts - places[-1], axis=1)))]]
            places.append(pts.mean(0))
        return times, np.array(places).reshape(-1, 2)
