"""The report's identities: who was who, decided again over the whole run.

The live ``FloorTracker`` must decide at each instant with only the past to go on, and in a
crowd one of its identities can hop from person to person (at 2 frames per second a shopper
moves 0.6 m between frames). The report is made after the run, so it can look at the whole
run. Each observation is a person at one instant: a place on the floor and a look (colour
histograms of torso and legs). Three steps:

1. **Tracklets.** The same person from instant to instant, followed by where they walk: each
   tracklet takes the observation nearest where its walk says it is now (one assignment over
   all tracklets at each instant), if alike enough in look; a second observation of one person
   at one instant (a double detection) goes with the first. Look alone cannot follow people
   (a third of a store's shoppers may wear alike dark clothes): motion leads, look only
   vetoes. A tracklet unseen for a few seconds ends.
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
from peopleflow.track import LOOK_SIZE, appearance_distance, look_roots, roots_distance


@dataclass(frozen=True)
class RelinkOptions:
    link: float = 0.9  # metres: the farthest an observation may be from a tracklet's guess
    # the least alike an observation and its tracklet's look may be: since a look tells people
    # in dark clothes apart (``track.HIST_BINS``), a tight veto keeps a tracklet on its person
    # where two walk close (tuning stores, with the look: 0.15 -> 0.07 took the mean of
    # (1 - correlation) and the three errors 0.371 -> 0.288; 0.25: 0.488)
    link_look: float = 0.07
    link_look_weight: float = 1.0  # metres of distance one unit of look distance weighs
    coast: float = 3.0  # seconds: a tracklet unseen this long ends (hidden, or gone)
    coast_reach: float = 1.0  # m/s: how much farther it may be found per second unseen
    velocity_smoothing: float = 0.5  # weight of the newest step in a tracklet's velocity
    double: float = 0.8  # metres: a second observation this near one taken, and alike
    double_look: float = 0.1  # (within this), is the same person seen twice
    join_look: float = 0.3  # tracklets less alike than this are never joined
    speed: float = 3.0  # m/s: walking, plus the error of two floor positions
    reach: float = 1.0  # metres added to the walking reach
    together: float = 2.0  # metres: two cameras' places for one person at one instant
    # ... for groups alike within ``together_look``: two shoppers standing side by side who
    # look different are two people, so less alike groups seen at one instant must be within
    # ``close_together`` (on 6 tuning stores, 0.08 and 0.5 m took the mean of (1 - correlation)
    # and the three errors 0.551 -> 0.498; 0.05-0.12 and 0.3-1.0 m: 0.498-0.512)
    together_look: float = 0.08
    close_together: float = 0.5
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
    """Observations (times ``t`` (n,), places ``xy`` (n, 2), ``looks`` (n, LOOK_SIZE)) grouped into
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
    """A tracklet number for each observation: instant by instant, each tracklet takes the
    observation nearest where its walk so far says it is now (a constant-velocity guess), by
    one assignment over all of them; a second observation of one person at one instant (a
    double detection) goes with the first; a tracklet unseen for ``coast`` seconds ends."""
    from scipy.optimize import linear_sum_assignment

    label = np.full(len(t), -1)
    active: list[_Tracklet] = []
    count = 0
    times = np.unique(t)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.5
    for now in times:
        cur = np.flatnonzero(t == now)
        active = [k for k in active if now - k.last <= o.coast]
        taken: dict[int, int] = {}  # index into active -> observation
        if active:
            dt = now - np.array([k.last for k in active])
            guess = np.stack([k.guess(now) for k in active])
            dist = np.linalg.norm(guess[:, None] - xy[cur][None], axis=2)
            unlike = appearance_distance(np.stack([k.look for k in active]), looks[cur])
            reach = o.link + o.coast_reach * np.maximum(dt - step, 0.0)
            fits = (dist <= reach[:, None]) & (unlike <= o.link_look)
            cost = np.where(fits, dist + o.link_look_weight * unlike, 1e6)
            for a, b in zip(*linear_sum_assignment(cost), strict=True):
                if fits[a, b]:
                    taken[int(a)] = int(cur[b])
                    label[cur[b]] = active[a].number
        if taken and o.double > 0:
            mine = np.array(list(taken.values()))
            owners = [active[a] for a in taken]
            for j in cur[label[cur] < 0]:
                near = np.linalg.norm(xy[mine] - xy[j], axis=1)
                unlike = appearance_distance(looks[j][None], np.stack([k.look for k in owners]))[0]
                alike = np.flatnonzero((near <= o.double) & (unlike <= o.double_look))
                if len(alike):
                    label[j] = owners[int(alike[np.argmin(near[alike])])].number
        for a in taken:
            k = active[a]
            k.see(now, xy[cur[label[cur] == k.number]].mean(0), looks[taken[a]], o)
        for j in cur[label[cur] < 0]:
            label[j] = count
            active.append(_Tracklet(count, now, xy[j].copy(), looks[j].copy()))
            count += 1
    return label


GUESS_AHEAD = 1.0  # seconds: the longest a tracklet's walk is carried on (people stop, turn)
LOOK_MEMORY = 0.9  # a tracklet's look: this much of what it was, the rest the newest frame's


class _Tracklet:
    """One tracklet being built: where it was last seen, how fast it walked, how it looks."""

    def __init__(self, number: int, t: float, xy: np.ndarray, look: np.ndarray) -> None:
        self.number, self.last, self.xy, self.look = number, t, xy, look
        self.velocity = np.zeros(2)

    def guess(self, now: float) -> np.ndarray:
        """Where it is at ``now`` if it walked on as before (``GUESS_AHEAD`` at most)."""
        return self.xy + self.velocity * min(now - self.last, GUESS_AHEAD)

    def see(self, now: float, xy: np.ndarray, look: np.ndarray, o: RelinkOptions) -> None:
        dt = now - self.last
        if dt <= GUESS_AHEAD:
            step = (xy - self.xy) / dt
            self.velocity = (1 - o.velocity_smoothing) * self.velocity + o.velocity_smoothing * step
        else:  # seen again after a while: how it walks now is not known
            self.velocity = np.zeros(2)
        self.xy, self.last = xy, now
        self.look = LOOK_MEMORY * self.look + (1 - LOOK_MEMORY) * look


class _Candidates:
    """One group's candidates to join: the groups it may be joined with (``others``, at the
    ``versions`` they had), most alike first (``unlike``); ``next``: the first not yet tried."""

    def __init__(
        self,
        group: int,
        version: int,
        unlike: np.ndarray,
        others: np.ndarray,
        versions: np.ndarray,
    ) -> None:
        self.group, self.version = group, version
        self.unlike, self.others, self.versions = unlike, others, versions
        self.next = 0

    def first_current(
        self, alive: np.ndarray, version: np.ndarray
    ) -> tuple[float, int, int, int, int] | None:
        """The first candidate not tried whose group has not changed since (a changed group
        has candidates of its own, made when it changed), as a heap entry: (unlike, group,
        other, the group's version, the other's); None when none is left."""
        rest = self.others[self.next :]
        current = alive[rest] & (version[rest] == self.versions[self.next :])
        if not current.any():
            self.next = len(self.others)
            return None
        self.next += int(np.argmax(current))
        k = self.next
        return (
            float(self.unlike[k]),
            self.group,
            int(self.others[k]),
            self.version,
            int(self.versions[k]),
        )


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
        self.roots = look_roots(self.look)  # compared at every join: kept, not made again
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
        """Join groups, most alike first, wherever one person could have made both.

        Each group keeps its own candidates (``_Candidates``: the groups near it in time and
        alike enough, most alike first), and the heap holds each group's first candidate only:
        the pairs come off in the order one heap of every pair would give, but a join replaces
        the joined group's candidates instead of leaving its old pairs in the heap to be
        popped and thrown away (ten minutes of a store: 920,000 such pops for 2,900 joins)."""
        heap: list[tuple[float, int, int, int, int]] = []
        candidates: dict[int, _Candidates] = {}

        def offer(a: int) -> None:
            head = candidates[a].first_current(self.alive, self.version)
            if head is not None:
                heapq.heappush(heap, head)

        for a in range(len(self.alive)):
            candidates[a] = self._candidates(a, most_unlike, True)
            offer(a)
        while heap:
            _, a, b, va, vb = heapq.heappop(heap)
            if not self.alive[a] or self.version[a] != va:
                continue  # a's candidates were replaced since, with a head of their own
            if self.alive[b] and self.version[b] == vb and self._fits(a, b, misfit):
                self._merge(a, b)
                del candidates[b]
                candidates[a] = self._candidates(a, most_unlike)
            else:
                candidates[a].next += 1
            offer(a)

    def _candidates(self, a: int, most_unlike: float, later_only: bool = False) -> _Candidates:
        """``a``'s pairs with the groups near it in time and alike enough, most alike first."""
        near = (
            self.alive
            & (self.start <= self.end[a] + self.o.window)
            & (self.end >= self.start[a] - self.o.window)
        )
        near[: a + 1 if later_only else 0] = False
        near[a] = False
        others = np.flatnonzero(near)
        d = roots_distance(self.roots[a][None], self.roots[others])[0]
        keep = d <= most_unlike
        others, d = others[keep], d[keep]
        order = np.lexsort((others, d))
        return _Candidates(
            a, int(self.version[a]), d[order], others[order], self.version[others[order]]
        )

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

        # pairs found not to fit, at the versions they had: a pass after a join tries every
        # piece again, and most of its pairs are as they were (an hour of a store: 6 in 10)
        misfits: set[tuple[int, int, int, int]] = set()
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
                d = roots_distance(self.roots[k][None], self.roots[others])[0]
                for i in np.argsort(d):
                    if d[i] > o.door_look:
                        break
                    other = int(others[i])
                    pair = (k, other, int(self.version[k]), int(self.version[other]))
                    if pair in misfits:
                        continue
                    if self._fits(k, other, o.door_misfit):
                        self._merge(other, k)
                        joined = True
                        break
                    misfits.add(pair)

    def _fits(self, a: int, b: int, misfit: float) -> bool:
        """Could one person have made both? Check every hand-over between the two."""
        (ta, pa), (tb, pb) = self._samples[a], self._samples[b]
        ts = np.concatenate((ta, tb))
        order = np.argsort(ts, kind="stable")
        from_b = order >= len(ta)
        hand = np.flatnonzero(from_b[1:] != from_b[:-1])
        if not len(hand):
            return True
        ps = np.concatenate((pa, pb))
        before, after = order[hand], order[hand + 1]
        dt = ts[after] - ts[before]
        moved = np.linalg.norm(ps[after] - ps[before], axis=1)
        at_once = dt < 1e-6
        together = self.o.together
        if (
            np.any(at_once & (moved > self.o.close_together))
            and self._unlike(a, b) > self.o.together_look
        ):
            together = self.o.close_together
        limit = np.where(at_once, together, self.o.reach + self.o.speed * dt)
        return int(np.count_nonzero(moved > limit)) <= misfit * len(hand)

    def _unlike(self, a: int, b: int) -> float:
        """How unlike two groups look (their looks averaged over all their observations)."""
        return float(roots_distance(self.roots[a], self.roots[b]))  # two vectors: one number

    def _merge(self, into: int, other: int) -> None:
        w1, w2 = self.weight[into], self.weight[other]
        self.look[into] = (self.look[into] * w1 + self.look[other] * w2) / (w1 + w2)
        self.roots[into] = look_roots(self.look[into])
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
        times, first, counts = np.unique(ts, return_index=True, return_counts=True)
        pts = self.xy[members]
        places = np.add.reduceat(pts, first, axis=0) / counts[:, None]
        spread = np.maximum.reduceat(pts, first, axis=0) - np.minimum.reduceat(pts, first, axis=0)
        disagree = (counts > 1) & (spread.max(axis=1) > 1.0)
        disagree[0] = False  # no place before to go by
        for k in np.flatnonzero(disagree):  # in time order: each goes by the one before
            seen = pts[first[k] : first[k] + counts[k]]
            places[k] = seen[int(np.argmin(np.linalg.norm(seen - places[k - 1], axis=1)))]
        return times, places
