"""Which identities are people: a noise filter that follows the evidence, not a constant.

A false detection (a bag, a reflection) strung together with others by look makes an identity
that spans a long time and is seen at few of its instants. A real person is seen at most
instants where cameras look at them, but how many depends on the store: in an aisle watched by
three cameras, nearly always; on a crowded street seen by one camera, where people hide behind
each other, far less. So the rule is relative:

1. For each identity, the instants of its span where a camera shows where it was (its position
   between sightings is taken on the straight line between them), and how many cameras show
   it there (``peopleflow.coverage``).
2. Its *seen share*: sightings over covered instants; and from it the *per-camera detection
   rate* that explains that share, given the camera counts (``1 - (1 - p) ** k``).
3. The store's detection rate: the upper quartile of those rates over the identities long
   enough to judge (real people are most of them, and the better-seen ones).
4. An identity is kept when its seen share is at least ``SEEN_RATIO`` of the share that rate
   predicts where it walked, and it lasts at least ``min_seconds``.

Nothing is dropped silently: ``Verdict`` counts what was made and dropped, and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from peopleflow.coverage import Coverage

MIN_TRACK_SECONDS = 3.0  # shorter identities are noise (a false detection, a fragment)
# An identity seen at under this share of what the store's detection rate predicts for where it
# walked is noise. On the generated stores (8 overlapping cameras) real people are seen at
# 40-100% of their instants and strung-together false detections at 5-25%; the rate there is
# ~0.95, so the cut falls near 0.3 (the constant this replaces). On one camera of a crowded
# street the rate is far lower and the cut with it.
SEEN_RATIO = 0.35
RATE_QUANTILE = 75  # percent: the store's detection rate, from the better-seen identities
LOWEST_RATE = 0.05  # a floor for the estimate: with no evidence at all, keep what is seen


@dataclass(frozen=True)
class Verdict:
    """What the filter kept (indices into the identities given) and why the rest went."""

    kept: list[int]
    made: int
    too_short: int
    seen_too_seldom: int
    detection_rate: float  # per camera and instant, estimated from the identities
    rates: list[float] = field(default_factory=list)  # each lasting identity's own estimate

    @property
    def dropped(self) -> int:
        return self.too_short + self.seen_too_seldom

    def to_json(self) -> dict[str, float | int]:
        return {
            "made": self.made,
            "kept": len(self.kept),
            "dropped_too_short": self.too_short,
            "dropped_seen_too_seldom": self.seen_too_seldom,
            "detection_rate": round(self.detection_rate, 3),
            "seen_ratio": SEEN_RATIO,
            "min_seconds": MIN_TRACK_SECONDS,
        }

    def describe(self) -> str:
        return (
            f"{self.made} identities made, {len(self.kept)} kept; dropped "
            f"{self.too_short} lasting under {MIN_TRACK_SECONDS:g} s and "
            f"{self.seen_too_seldom} seen too seldom (under {SEEN_RATIO:.0%} of what a "
            f"per-camera detection rate of {self.detection_rate:.2f} predicts)"
        )


@dataclass(frozen=True)
class _Sightings:
    seen: int  # instants the identity was seen
    covered: int  # instants of its span where a camera shows where it was
    cameras: np.ndarray  # the camera count at each covered instant


def judge(
    people: list[tuple[np.ndarray, np.ndarray]],
    step: float,
    coverage: Coverage,
    min_seconds: float = MIN_TRACK_SECONDS,
    prior_rates: Sequence[float] = (),
) -> Verdict:
    """Judge identities given as (times (n,), floor positions (n, 2)), sampled every ``step``
    seconds, against where the cameras look. ``prior_rates``: the detection rates of
    identities judged before (a live service judges a few at a time)."""
    lasting = [i for i, (t, _) in enumerate(people) if t[-1] - t[0] >= min_seconds]
    sightings = {i: _sightings(*people[i], step, coverage) for i in lasting}
    rates = [_camera_rate(s) for s in sightings.values()]
    pooled = [*prior_rates, *rates]
    rate = max(LOWEST_RATE, float(np.percentile(pooled, RATE_QUANTILE))) if pooled else 1.0
    kept = [
        i for i in lasting if _share(sightings[i]) >= SEEN_RATIO * _expected(sightings[i], rate)
    ]
    return Verdict(
        kept, len(people), len(people) - len(lasting), len(lasting) - len(kept), rate, rates
    )


def _sightings(t: np.ndarray, xy: np.ndarray, step: float, coverage: Coverage) -> _Sightings:
    seen = len(np.unique(t))
    instants = t[0] + step * np.arange(int(round((t[-1] - t[0]) / step)) + 1)
    where = np.c_[np.interp(instants, t, xy[:, 0]), np.interp(instants, t, xy[:, 1])]
    counts = coverage.at(where)
    covered = counts[counts > 0]
    # Where someone was seen a camera showed them, whatever the grid says at its edge.
    if len(covered) < seen:
        covered = np.ones(seen, np.int32)
    return _Sightings(seen, len(covered), covered)


def _share(s: _Sightings) -> float:
    return min(1.0, s.seen / max(s.covered, 1))


def _camera_rate(s: _Sightings) -> float:
    """The per-camera detection rate that would give this seen share over these cameras."""
    share = min(_share(s), 0.99)
    return float(1.0 - (1.0 - share) ** (1.0 / float(np.mean(s.cameras))))


def _expected(s: _Sightings, rate: float) -> float:
    """The seen share a person would have here, detected at ``rate`` by each camera."""
    return float(np.mean(1.0 - (1.0 - rate) ** s.cameras))
