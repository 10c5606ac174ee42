"""The live service's memory: people not yet final, and what to write when.

The pipeline gives one ``FloorPeople`` per instant. ``Recorder.add`` keeps their observations
and, every ``flush_every`` seconds of camera time, hands back a ``Batch``: what the database
must hold now, written in one transaction.

- **People are final after a bounded delay.** Every ``window`` seconds the observations held
  are grouped into people again (``peopleflow.people``: relinked over them, or the live
  identities); a person last seen more than ``final_after`` seconds ago (or held for
  ``longest`` seconds, whatever happens) is final: the noise
  filter judges them, their track adds to the windows it crosses (``peopleflow.analytics``),
  and their observations are let go. So memory holds only the last few minutes, however long
  the run.
- **Windows close** when no person still held can add to them: their end is at or before the
  first observation held.
- **Health**: frames per camera and window, and gaps (a camera silent for ``gap_after``
  seconds, with when it went and came back).
- **State**: every batch carries the recorder's whole state (``state()``, a few MB at most),
  written with it. A service killed at any moment starts again from the last batch written
  (``Recorder.restore``): nothing it wrote is written again, nothing it held is lost.

Times are epoch seconds: the service adds the run's origin to the pipeline's timestamps.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from peopleflow.analytics import WINDOW_SECONDS, Tally, tally
from peopleflow.config import FloorPlan
from peopleflow.coverage import Coverage
from peopleflow.people import Observations, kept_tracks, people_of
from peopleflow.track import HIST_BINS, LOOK_SIZE

FINAL_AFTER = 120.0  # seconds unseen after which a person is final (relinking looks 2 min back)
FLUSH_EVERY = 5.0  # seconds of camera time between writes: the database's lag behind cameras
MIN_WALL = 1.0  # wall seconds between writes, at least
# A person held this long is made final even if still seen: what is held (and relinked every
# minute) stays bounded whoever never leaves (staff at a counter, identities that relinking
# keeps joining). The cost: someone in view longer is counted again every LONGEST seconds.
LONGEST = 1200.0
KEEP_RATES = 500  # identities whose detection rate the noise filter remembers
EPOCH_IDS = 1 << 40  # live identities of successive runs of the service never collide


@dataclass(frozen=True)
class RecorderSettings:
    plan: FloorPlan
    coverage: Coverage
    step: float  # seconds between instants
    relinked: bool = True
    min_visit: float = 5.0
    window: int = WINDOW_SECONDS
    final_after: float = FINAL_AFTER
    flush_every: float = FLUSH_EVERY
    min_wall: float = MIN_WALL  # wall seconds between two batches, at least
    longest: float = LONGEST  # seconds a person may be held before they are made final anyway

    @property
    def gap_after(self) -> float:
        """Seconds a camera may be silent before it counts as a gap."""
        return max(2.0, 3.0 * self.step)


@dataclass(frozen=True)
class Gap:
    camera: str
    start: float  # epoch seconds: the last frame before
    end: float  # the first frame after


@dataclass
class Batch:
    """What one write puts in the database, all of it or none."""

    number: int  # 1, 2, ...: a batch is written once (its number is part of every key)
    position: float  # epoch seconds of the last instant the batch accounts for
    captured: float  # wall clock when the batch's first instant was read (0: not known)
    tally: Tally
    frames: Counter[tuple[int, str]]  # (window start, camera) -> frames processed
    frames_dropped: Counter[tuple[int, str]]  # by a live camera, to keep up
    reconnects: Counter[tuple[int, str]]
    gaps: list[Gap]
    closed: list[int]  # window starts, closed by this batch
    people: int  # people made final by this batch (kept)
    dropped: int  # identities the noise filter dropped in this batch
    state: bytes  # the recorder after this batch


@dataclass
class _Held:
    obs: Observations = field(default_factory=Observations.empty)
    rates: list[float] = field(default_factory=list)
    batch: int = 0
    epoch: int = 0  # how many times the service started before: offsets the live identities
    position: float | None = None  # last instant added
    last_flush: float | None = None
    last_final: float | None = None
    closed_until: float | None = None  # every window ending at or before this is closed
    seen: dict[str, float] = field(default_factory=dict)  # camera -> its last frame
    counts: dict[str, list[int]] = field(default_factory=dict)  # camera -> its reader's last
    # (dropped, reconnects): counts since the reader started, so a drop means a new reader


class Recorder:
    """Held observations, and the batches to write (see the module's docstring)."""

    def __init__(self, settings: RecorderSettings, held: _Held | None = None) -> None:
        self.settings = settings
        self._held = held or _Held()
        self._frames: Counter[tuple[int, str]] = Counter()
        self._frames_dropped: Counter[tuple[int, str]] = Counter()
        self._reconnects: Counter[tuple[int, str]] = Counter()
        self._gaps: list[Gap] = []
        self._tally = Tally()
        self._closed: list[int] = []
        self._stitch: dict[int, int] | None = None  # new live identity -> the one held
        self._votes: Counter[tuple[int, int]] = Counter()  # (new, held): instants in one place
        self._people = 0
        self._dropped = 0
        self._captured = 0.0  # the first instant since the last batch: when it was read
        self._wall = time.monotonic  # the clock that spaces batches (a test may replace it)
        self._flushed = -math.inf

    @classmethod
    def restore(cls, settings: RecorderSettings, state: bytes) -> Recorder:
        """The recorder as a batch left it, for a service started again. The live tracker
        starts again too, with new identities: the first instant's people are matched to
        those of the last instant held (``_stitch``), so nobody present is counted twice."""
        held = _decode(state)
        held.epoch += 1
        recorder = cls(settings, held)
        recorder._stitch = {}
        return recorder

    def warm(self, t: float, ids: np.ndarray, xy: np.ndarray) -> None:
        """An instant already held, seen again by a restarted service while its trackers warm
        up: who is where says which new live identity is which held one."""
        if self._stitch is None:
            return
        held = self._held.obs
        here = np.flatnonzero(np.abs(held.t - t) < 1e-6)
        new = np.asarray(ids, np.int64).reshape(-1) + self._held.epoch * EPOCH_IDS
        for pid, place in zip(new, np.asarray(xy, np.float64).reshape(-1, 2), strict=True):
            if len(here):
                gap = np.linalg.norm(held.xy[here] - place, axis=1)
                if gap.min() <= SAME_PLACE:
                    self._votes[(int(pid), int(held.ids[here[gap.argmin()]]))] += 1

    @property
    def position(self) -> float | None:
        """Epoch seconds of the last instant added (or restored)."""
        return self._held.position

    @property
    def held_observations(self) -> int:
        return len(self._held.obs)

    def expect(self, cameras: list[str], since: float) -> None:
        """Cameras that should send frames from ``since`` on: one that comes late, or never
        sent any before, has a gap from then (a live camera unreachable at start-up)."""
        for cam in cameras:
            self._held.seen.setdefault(cam, since)

    def add(
        self,
        t: float,
        ids: np.ndarray,
        xy: np.ndarray,
        looks: np.ndarray,
        cameras: list[str],
        health: dict[str, tuple[int, int]] | None = None,
        captured: float = 0.0,
    ) -> Batch | None:
        """One instant (epoch seconds ``t``) of people seen by ``cameras``, with each camera's
        (dropped, reconnects) counts so far; a batch when one is due."""
        h, s = self._held, self.settings
        win = int(np.floor(t / s.window) * s.window)
        if not self._captured:
            self._captured = captured
        for cam in cameras:
            last = h.seen.get(cam)
            if last is not None and t - last > s.gap_after:
                self._gaps.append(Gap(cam, last, t))
            h.seen[cam] = t
            self._frames[(win, cam)] += 1
        for cam, (dropped, reconnects) in (health or {}).items():
            before = h.counts.get(cam, [0, 0])
            if dropped < before[0] or reconnects < before[1]:
                before = [0, 0]  # counts of a new reader (its pipeline started again)
            self._frames_dropped[(win, cam)] += dropped - before[0]
            self._reconnects[(win, cam)] += reconnects - before[1]
            h.counts[cam] = [dropped, reconnects]
        n = len(ids)
        ids = np.asarray(ids, np.int64).reshape(-1) + h.epoch * EPOCH_IDS
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        if self._stitch is not None:
            if not self._stitch and n:
                self._stitch = _stitched(h.obs, ids, xy, self._votes) or {-1: -1}
            ids = np.array([self._stitch.get(int(i), int(i)) for i in ids], np.int64)
        new = Observations(
            np.full(n, t),
            ids,
            xy,
            np.asarray(looks, np.float16).reshape(n, LOOK_SIZE),
        )
        h.obs = h.obs.concat(new)
        h.position = t
        if h.last_flush is None:
            h.last_flush = h.last_final = t
            h.closed_until = win
        if t - h.last_final >= s.window:  # type: ignore[operator]
            self._finalise(t, everyone=False)
            h.last_final = t
        # A batch every flush_every seconds of camera time, and no more often than every
        # min_wall seconds of wall time (files run faster than real time: each batch carries
        # the recorder's state, and writing it several times a second only costs CPU).
        if t - h.last_flush >= s.flush_every and self._wall() - self._flushed >= s.min_wall:
            return self._batch()
        return None

    def note_gap(self, camera: str, start: float, end: float) -> None:
        """A gap the service knows of (it was down, for a live camera)."""
        self._gaps.append(Gap(camera, start, end))

    def checkpoint(self) -> Batch:
        """What is pending, written now; the people held stay held (the service goes on)."""
        return self._batch()

    def finish(self) -> Batch:
        """Everyone held is final now (the cameras ended, or the service stops)."""
        if self._held.position is not None:
            self._finalise(self._held.position + self.settings.step, everyone=True)
        return self._batch()

    def _finalise(self, now: float, everyone: bool) -> None:
        h, s = self._held, self.settings
        obs = h.obs
        if len(obs):
            people = people_of(_as_float32(obs), s.relinked, s.plan.doors)
            final = [
                p
                for p in people
                if everyone or p.t[-1] < now - s.final_after or p.t[0] < now - s.longest
            ]
            if final:
                judged = kept_tracks(final, s.step, s.coverage, prior_rates=h.rates)
                h.rates = [*h.rates, *judged.verdict.rates][-KEEP_RATES:]
                self._tally.add(tally(judged.tracks, s.plan, s.window, s.min_visit))
                self._people += len(judged.tracks)
                self._dropped += judged.verdict.dropped
                let_go = np.zeros(len(obs), bool)
                for p in final:
                    let_go[p.members] = True
                h.obs = obs.take(np.flatnonzero(~let_go))
        first_held = float(h.obs.t.min()) if len(h.obs) else now
        if everyone:  # the window of the last instant closes too
            first_held = float(np.ceil(now / s.window) * s.window)
        assert h.closed_until is not None
        while h.closed_until + s.window <= first_held + 1e-9:
            self._closed.append(int(h.closed_until))
            h.closed_until += s.window

    def _batch(self) -> Batch:
        h = self._held
        h.batch += 1
        self._flushed = self._wall()
        h.last_flush = h.position
        batch = Batch(
            h.batch,
            h.position if h.position is not None else 0.0,
            self._captured,
            self._tally,
            self._frames,
            +self._frames_dropped,
            +self._reconnects,
            self._gaps,
            self._closed,
            self._people,
            self._dropped,
            _encode(h),
        )
        self._tally, self._frames, self._gaps, self._closed = Tally(), Counter(), [], []
        self._frames_dropped, self._reconnects = Counter(), Counter()
        self._captured = 0.0
        self._people = self._dropped = 0
        return batch


STITCH_RADIUS = 1.5  # metres: the same person, one instant apart across a restart
SAME_PLACE = 0.3  # metres: the same person at the same instant, seen by two runs


def _stitched(
    held: Observations, ids: np.ndarray, xy: np.ndarray, votes: Counter[tuple[int, int]]
) -> dict[int, int]:
    """New live identities -> held ones: first those seen in the same places at the same
    instants while the trackers warmed up (most instants first), then the rest of the first
    instant's people to the last instant held, nearest first."""
    from scipy.optimize import linear_sum_assignment

    out: dict[int, int] = {}
    taken: set[int] = set()
    for (new, old), _ in votes.most_common():
        if new not in out and old not in taken:
            out[new] = old
            taken.add(old)
    if not len(held):
        return out
    last = (held.t == held.t.max()) & ~np.isin(held.ids, list(taken))
    rest = np.array([int(i) not in out for i in ids], bool)
    if not last.any() or not rest.any():
        return out
    old_ids, old_xy = held.ids[last], held.xy[last]
    dist = np.linalg.norm(xy[rest][:, None] - old_xy[None], axis=2)
    rows, cols = linear_sum_assignment(np.where(dist <= STITCH_RADIUS, dist, 1e6))
    for r, c in zip(rows, cols, strict=True):
        if dist[r, c] <= STITCH_RADIUS:
            out[int(ids[rest][r])] = int(old_ids[c])
    return out


def _as_float32(obs: Observations) -> Observations:
    looks = obs.looks.astype(np.float32) if obs.looks is not None else None
    return Observations(obs.t, obs.ids, obs.xy, looks)


def _encode(h: _Held) -> bytes:
    meta = {
        "rates": h.rates,
        "batch": h.batch,
        "epoch": h.epoch,
        "position": h.position,
        "last_flush": h.last_flush,
        "last_final": h.last_final,
        "closed_until": h.closed_until,
        "seen": h.seen,
        "counts": h.counts,
    }
    looks = h.obs.looks if h.obs.looks is not None else np.zeros((0, LOOK_SIZE), np.float16)
    buf = io.BytesIO()
    np.savez(  # not compressed: it is written every few seconds, and compressing costs CPU
        buf,
        meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
        t=h.obs.t,
        ids=h.obs.ids,
        xy=h.obs.xy,
        looks=looks.astype(np.float16),
    )
    return buf.getvalue()


def _decode(state: bytes) -> _Held:
    with np.load(io.BytesIO(state)) as data:
        meta = json.loads(data["meta"].tobytes().decode())
        looks = data["looks"]
        if looks.shape[1:] != (LOOK_SIZE,):
            # Held by a version whose looks were of another kind: flat histograms instead,
            # alike one another and unlike any look seen after, so the people held are still
            # joined by where they walked (not to anyone who comes after). Not an error at start.
            looks = np.full((len(looks), LOOK_SIZE), 1.0 / HIST_BINS, np.float16)
        obs = Observations(data["t"], data["ids"], data["xy"], looks)
    return _Held(
        obs,
        list(meta["rates"]),
        int(meta["batch"]),
        int(meta["epoch"]),
        meta["position"],
        meta["last_flush"],
        meta["last_final"],
        meta["closed_until"],
        dict(meta["seen"]),
        {k: list(v) for k, v in meta["counts"].items()},
    )
