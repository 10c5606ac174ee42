"""Who is who: per-camera tracking, and one identity per person across cameras on the floor.

``CameraTracker`` runs ByteTrack (Roboflow's ``trackers``, Apache-2.0) on one camera's boxes and
projects each person's foot point (the bottom centre of the box) onto the floor plan through
the camera's homography. A person whose feet the frame's bottom edge cuts off (one standing
right below the camera: at a checkout or a promotion table, often the only camera that sees
them) is placed by the top of their head instead, taken ``PERSON`` metres up, less surely
(``HeadPlacer``). People who land off the floor are not placed.

``FloorTracker`` takes every camera's placed people for one instant and keeps one identity per
person across all cameras:

1. observations from different cameras are one person where their places agree within what
   each camera's placing can be off by (``floor_spread``: an ellipse on the floor, long along
   the camera's line of sight, narrow across it), unless they look clearly unalike
   (``merge_look_gate``); the person's place weighs each camera by how sure it is along
   each direction, so two cameras that look from different sides pin it down;
2. people are matched to the floor tracks (Hungarian assignment, scipy) by distance to each
   track's predicted position, by appearance (colour histograms of torso and legs), and by
   the camera track ids already bound to a track; a person who looks unlike a track
   (``look_gate``) is not matched to it by place alone (a shopper leaving through the door
   while another comes in must not swap identities);
3. a person matched to no track is first compared with tracks lost in the last ``reid_window``
   seconds (a person who walked out of every camera and back in, or was hidden), by place,
   time and appearance, before a new identity is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from peopleflow.geometry import (
    PERSON,
    Homography,
    HomographyError,
    camera_matrix,
    plane_homography,
    project,
)

# A look: per body part (torso, legs), one histogram of each colour channel, 32 levels each. One
# histogram of all three channels at 4 levels each (what it was) put every dark colour in one
# bin, so that people in dark clothes a few levels apart all looked the same: on crops of a drawn
# store (benchmarks/bench_reid.py) ROC AUC between two of them 0.53, now 0.97; over all pairs
# 0.86, now 0.99. Three histograms of 32 keep it small (192 numbers; one of 32^3 would not).
HIST_BINS = 32  # per colour channel and body part
HISTOGRAMS = 6  # torso and legs, three colour channels each
LOOK_SIZE = HISTOGRAMS * HIST_BINS  # one look: the torso's three histograms, then the legs'
CHANNEL_OFFSETS = np.arange(3) * HIST_BINS  # where each channel's bins begin in a body part's
# How long an identity out of view waits to be recognised again, where the cameras see most of
# the floor (a person hidden behind a shelf or in a crowd comes back within it).
REID_WINDOW = 20.0
FULL_VIEW = 0.6  # share of the floor seen from which the whole window applies
# How alike someone lost and found again must look. With the look per colour channel, two
# people's looks are nearer than they were (median distance 0.53, was 0.66-0.70): at 0.45 a
# one-camera store (seed 11), whose report keeps the live identities, counted 18 visitors of 30;
# at 0.3, 30 (0.2: 41).
REID_LOOK_GATE = 0.3
SHORTEST_REID_WINDOW = 8.0
# Where a camera places a person is uncertain by a share of the person's box height: the foot
# point's row (legs apart in a stride, feet half hidden) far more than its column. Through the
# camera's homography that becomes an ellipse on the floor. Two people standing side by side a
# metre apart are told apart across a camera's line of sight; one person whom two cameras
# place a metre apart along theirs is one. (On the tuning stores, with the round 1.5 m radius
# this replaces, a third to a half of the people merged at a promotion table were two people
# made one; mean visitors error 0.052 -> 0.037, transitions 0.275 -> 0.225.)
FOOT_ROW_SPREAD = 0.15  # one standard deviation, as a share of the box height
FOOT_COLUMN_SPREAD = 0.03
FLOOR_SPREAD = 0.1  # metres, on every place: the calibration's own error
UNKNOWN_SPREAD = 0.35  # metres: a place given with no camera geometry (a round spread)
# A person placed by the top of their head: the box's top edge is sharper than its bottom (no
# stride), but people are not all ``PERSON`` tall, which moves the place along the line of
# sight. (On the tuning stores, placing these people at all took the mean of (1 - correlation)
# and the three errors from 0.370 to 0.338: store 502's checkout, seen from above by one
# camera, had 41% of its dwell; see docs/peopleflow.md.)
HEAD_ROW_SPREAD = 0.05  # one standard deviation, as a share of the box height
STATURE_SPREAD = 0.07  # metres: adults' stature, one standard deviation
HEAD_FEET_SLACK = 0.1  # share of the person's height their feet may be above the bottom edge
# Squared Mahalanobis distance within which two places are one person's: 99% of the pairs
# that one person gives (chi-square, 2 degrees of freedom).
SAME_PLACE = 9.21


def reid_window(floor_seen: float) -> float:
    """The re-identification window for cameras that show ``floor_seen`` (0-1) of the floor.

    Where the cameras see little of the floor, someone out of view for long has most likely
    walked off into the unseen part, and a newcomer who looks alike is someone else: on
    generated one-camera stores (27% of the floor seen) the full 20 s window merged a third of
    the visitors into others (20 identities for 30 people; 28-30 with 8-10 s)."""
    share = min(1.0, max(0.0, floor_seen) / FULL_VIEW)
    return max(SHORTEST_REID_WINDOW, REID_WINDOW * share)


def appearance(frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Colour histograms of the torso and legs of each box, (n, LOOK_SIZE): per body part, one
    histogram per colour channel, each summing to 1."""
    out = np.zeros((len(boxes), LOOK_SIZE), np.float32)
    h, w = frame.shape[:2]
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        bh, bw = y1 - y0, x1 - x0
        for part, (top, bottom) in enumerate(((0.2, 0.5), (0.55, 0.9))):
            ya, yb = int(max(y0 + top * bh, 0)), int(min(y0 + bottom * bh, h))
            xa, xb = int(max(x0 + 0.25 * bw, 0)), int(min(x1 - 0.25 * bw, w))
            if yb <= ya or xb <= xa:
                continue
            # the three channels' levels counted at once, each in its own range of bins
            levels = frame[ya:yb, xa:xb].reshape(-1, 3) // (256 // HIST_BINS) + CHANNEL_OFFSETS
            hist = np.bincount(levels.ravel(), minlength=3 * HIST_BINS).astype(np.float32)
            out[k, part * 3 * HIST_BINS : (part + 1) * 3 * HIST_BINS] = hist / len(levels)
    return out


def appearance_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - Bhattacharyya coefficient, averaged over the six histograms: 0 same, 1 disjoint.
    (n, m), as one matrix product (a report compares thousands of looks at once)."""
    return roots_distance(look_roots(a), look_roots(b))


def look_roots(looks: np.ndarray) -> np.ndarray:
    """The square roots of looks' histograms: what ``roots_distance`` compares (a caller
    comparing the same looks again and again keeps them, not the looks)."""
    return np.asarray(np.sqrt(np.maximum(looks, 0)))


def roots_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``appearance_distance`` between looks given by their ``look_roots``."""
    return np.asarray(1.0 - (a @ b.T) / HISTOGRAMS)


@dataclass
class Placed:
    """People one camera placed on the floor at one instant."""

    camera: str
    ids: np.ndarray  # (n,) camera track ids
    floor: np.ndarray  # (n, 2) metres
    heights: np.ndarray  # (n,) box heights in pixels: how near, how trustworthy
    looks: np.ndarray  # (n, 128) appearance
    spread: np.ndarray | None = None  # (n, 2, 2) m^2: how far off each place may be
    # (``floor_spread``); None: round, ``UNKNOWN_SPREAD``

    def spreads(self) -> np.ndarray:
        """Each place's covariance (n, 2, 2), round where none was given."""
        if self.spread is not None:
            return np.asarray(self.spread, np.float64).reshape(-1, 2, 2)
        return np.broadcast_to(np.eye(2) * UNKNOWN_SPREAD**2, (len(self.ids), 2, 2))


def floor_spread(
    homography: Homography,
    feet: np.ndarray,
    heights: np.ndarray,
    row_share: float = FOOT_ROW_SPREAD,
) -> np.ndarray:
    """How far off the floor places of foot points ``feet`` (n, 2) pixels, of boxes
    ``heights`` (n,) pixels tall, may be: covariances (n, 2, 2) in square metres. (``row_share``
    of the height down the image; a head's through its plane's ``homography``: ``HeadPlacer``.)"""
    h = np.asarray(heights, np.float64).reshape(-1)
    pixel = np.zeros((len(h), 2, 2))
    pixel[:, 0, 0] = (FOOT_COLUMN_SPREAD * h) ** 2
    pixel[:, 1, 1] = (row_share * h) ** 2
    j = homography.jacobian(feet)
    return np.asarray(j @ pixel @ j.transpose(0, 2, 1) + FLOOR_SPREAD**2 * np.eye(2))


class HeadPlacer:
    """Places people by the top of their head, taken ``PERSON`` metres up, for one camera:
    for those whose feet the frame's bottom edge cuts off."""

    def __init__(self, projection: np.ndarray, frame_size: tuple[int, int]):
        self.projection, (self.width, self.height) = projection, frame_size
        self.plane = plane_homography(projection, PERSON)
        self.taller = plane_homography(projection, PERSON + STATURE_SPREAD)

    @classmethod
    def of(cls, homography: Homography, frame_size: tuple[int, int]) -> HeadPlacer | None:
        """The placer for the camera of floor ``homography`` and ``frame_size`` (width,
        height); None where no camera fits the calibration, or it hangs too low for heads to
        be below it (then feet only)."""
        projection = camera_matrix(homography.inverse, frame_size)
        if projection is None:
            return None
        centre = np.linalg.svd(projection)[2][-1]  # the camera's centre: projection @ it = 0
        # a camera at head height sees heads on its horizon, where a pixel spans metres: it
        # must hang 0.3 m above tall people's heads
        if abs(centre[3]) < 1e-12 or centre[2] / centre[3] < PERSON + 2 * STATURE_SPREAD + 0.3:
            return None
        try:
            return cls(projection, frame_size)
        except HomographyError:
            return None

    def place(
        self, heads: np.ndarray, heights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Floor places (n, 2) and their covariances (n, 2, 2) of head points ``heads`` (n, 2)
        pixels (the top centres of boxes ``heights`` (n,) pixels tall, cut off at the bottom
        edge), and which of them are sound: the place must put the feet below the bottom
        edge, as the box said (within ``HEAD_FEET_SLACK`` of the person's height), and the
        head and the feet in front of the camera. Where they are not, the box's top was no
        head ``PERSON`` metres up (heads near a low camera's horizon map tens of metres away; a
        box of an arm or a bag)."""
        floor = self.plane.to_floor(heads)
        along = self.taller.to_floor(heads) - floor  # a person taller by one deviation
        spread = floor_spread(self.plane, heads, heights, HEAD_ROW_SPREAD)
        spread += along[:, :, None] * along[:, None, :]
        feet, feet_depth = project(self.projection, np.c_[floor, np.zeros(len(floor))])
        _, head_depth = project(self.projection, np.c_[floor, np.full(len(floor), PERSON)])
        tall = feet[:, 1] - heads[:, 1]
        sound = (
            (feet_depth > 0)
            & (head_depth > 0)
            & (tall > 0)
            & (feet[:, 1] >= self.height - 3 - HEAD_FEET_SLACK * tall)
        )
        return floor, spread, np.asarray(sound)


class CameraTracker:
    """ByteTrack on one camera, with foot points projected to the floor."""

    def __init__(
        self,
        camera: str,
        homography: Homography,
        frame_size: tuple[int, int],
        fps: float,
        plan_size: tuple[float, float],
    ) -> None:
        from trackers import ByteTrackTracker

        self.camera, self.homography = camera, homography
        self.width, self.height = frame_size
        self.heads = HeadPlacer.of(homography, frame_size)
        self.plan_size = plan_size
        self.tracker = ByteTrackTracker(
            lost_track_buffer=max(2, int(round(fps * 2))),
            frame_rate=fps,
            track_activation_threshold=0.3,
            minimum_consecutive_frames=1,
            minimum_iou_threshold=0.05,
            high_conf_det_threshold=0.4,
        )

    def update(self, boxes: np.ndarray, scores: np.ndarray, looks: np.ndarray) -> Placed:
        import supervision as sv

        n = len(boxes)
        dets = sv.Detections(
            xyxy=np.asarray(boxes, np.float32).reshape(-1, 4),
            confidence=np.asarray(scores, np.float32),
            class_id=np.zeros(n, int),
            data={"row": np.arange(n)},
        )
        tracked = self.tracker.update(dets)
        rows = np.asarray(tracked.data.get("row", np.zeros(0, int)), int)
        ids = np.asarray(tracked.tracker_id, int)
        b = np.asarray(boxes, np.float64).reshape(-1, 4)[rows]
        heights = b[:, 3] - b[:, 1]
        feet_seen = b[:, 3] < self.height - 3  # feet in the frame (the head may be cut off)
        feet = np.c_[(b[:, 0] + b[:, 2]) / 2, b[:, 3]]
        floor = self.homography.to_floor(feet) if len(feet) else np.zeros((0, 2))
        spread = floor_spread(self.homography, feet, heights)
        by_head = ~feet_seen & (b[:, 1] > 3) if self.heads else np.zeros(len(b), bool)
        if by_head.any() and self.heads:
            heads = np.c_[feet[by_head, 0], b[by_head, 1]]
            floor[by_head], spread[by_head], by_head[by_head] = self.heads.place(
                heads, heights[by_head]
            )
        w, h = self.plan_size
        on_floor = (
            (floor[:, 0] > -0.3)
            & (floor[:, 0] < w + 0.3)
            & (floor[:, 1] > -0.3)
            & (floor[:, 1] < h + 0.3)
        )
        # A detection ByteTrack has not confirmed yet (id -1) is still a person at a place: it
        # goes on with no camera id, and the floor tracker alone decides who it is.
        keep = (feet_seen | by_head) & on_floor
        return Placed(
            self.camera,
            ids[keep],
            np.clip(floor[keep], 0, [w, h]),
            heights[keep],
            np.asarray(looks, np.float32).reshape(n, -1)[rows][keep]
            if n
            else np.zeros((0, LOOK_SIZE), np.float32),
            spread[keep],
        )


@dataclass
class _Track:
    id: int
    xy: np.ndarray
    velocity: np.ndarray
    last: float
    look: np.ndarray
    bound: set[tuple[str, int]] = field(default_factory=set)
    seen: int = 1


@dataclass
class _Person:
    """One person at one instant, as the cameras merged so far place them."""

    xy: np.ndarray
    look: np.ndarray
    members: list[tuple[str, int]]
    weight: float  # of the look: the box heights squared (a nearer camera sees clothes better)
    sureness: np.ndarray  # (2, 2): the inverse of the place's covariance

    def add(self, xy: np.ndarray, sure: np.ndarray, look: np.ndarray, weight: float) -> None:
        """Another camera's view (``sure``: the inverse of its place's covariance): each place
        weighs by how sure it is in each direction."""
        total = self.sureness + sure
        self.xy = _inverse(total) @ (self.sureness @ self.xy + sure @ xy)
        self.sureness = total
        self.look = (self.look * self.weight + look * weight) / (self.weight + weight)
        self.weight += weight


def _inverse(m: np.ndarray) -> np.ndarray:
    """Inverses of symmetric 2 x 2 matrices (..., 2, 2), in closed form (a store's instant
    compares thousands of pairs; ``np.linalg.inv`` takes several times as long)."""
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 1, 1]
    det = a * c - b * b
    if m.ndim == 2:
        return np.asarray(np.array([[c, -b], [-b, a]]) / det)
    rows = np.stack([np.stack([c, -b], -1), np.stack([-b, a], -1)], -2)
    return np.asarray(rows / det[..., None, None])


def _squared_mahalanobis(d: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """d^T cov^-1 d for differences ``d`` (..., 2) and symmetric covariances (..., 2, 2)."""
    a, b, c = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1]
    x, y = d[..., 0], d[..., 1]
    return np.asarray((c * x * x - 2 * b * x * y + a * y * y) / (a * c - b * b))


class FloorTracker:
    """One identity per person on the floor plan, over all cameras."""

    def __init__(
        self,
        merge_radius: float = 3.0,
        look_weight: float = 2.0,
        gate: float = 1.6,
        reid_window: float = REID_WINDOW,
        max_speed: float = 2.0,
        appearance_weight: float = 2.0,
        look_gate: float = 0.35,
        merge_look_gate: float = 0.4,
        reid_look_gate: float = REID_LOOK_GATE,
    ) -> None:
        self.merge_radius, self.gate = merge_radius, gate
        self.merge_look_gate = merge_look_gate
        self.look_gate, self.reid_look_gate = look_gate, reid_look_gate
        self.look_weight = look_weight
        self.reid_window, self.max_speed = reid_window, max_speed
        self.appearance_weight = appearance_weight
        self.active: dict[int, _Track] = {}
        self._next = 0
        self.last_looks = np.zeros((0, LOOK_SIZE), np.float32)

    @property
    def identities(self) -> int:
        """How many identities have been given out so far."""
        return self._next

    def update(self, t: float, placed: list[Placed]) -> list[tuple[int, float, float]]:
        """The people seen at time ``t`` as (identity, x, y)."""
        from scipy.optimize import linear_sum_assignment

        people = self._merge(placed)
        current = [tr for tr in self.active.values() if t - tr.last <= 2.0]
        assigned: dict[int, int] = {}
        if people and current:
            looks = appearance_distance(
                np.stack([p.look for p in people]), np.stack([c.look for c in current])
            )
            guess = np.stack([tr.xy + tr.velocity * min(t - tr.last, 1.0) for tr in current])
            d = np.linalg.norm(np.stack([p.xy for p in people])[:, None] - guess[None], axis=2)
            bound = self._bound(people, current)
            fits = (d <= np.where(bound, 1.5 * self.gate, self.gate)) & (
                bound | (looks <= self.look_gate)  # else someone else in the same place
            )
            cost = np.where(fits, d + self.appearance_weight * looks - 0.8 * bound, 1e6)
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols, strict=True):
                if cost[i, j] < 1e5:
                    assigned[i] = current[j].id
        taken = set(assigned.values())
        for i, p in enumerate(people):
            if i not in assigned:
                assigned[i] = self._reidentify(t, p, taken)
                taken.add(assigned[i])
        out = []
        for i, p in enumerate(people):
            tr = self.active[assigned[i]]
            dt = t - tr.last
            if dt > 0 and tr.seen > 0:
                v = (p.xy - tr.xy) / dt
                tr.velocity = 0.6 * tr.velocity + 0.4 * v if dt <= 1.0 else np.zeros(2)
            tr.xy, tr.last = p.xy, t
            tr.look = 0.9 * tr.look + 0.1 * p.look
            tr.bound.update(m for m in p.members if m[1] >= 0)
            tr.seen += 1
            out.append((tr.id, float(p.xy[0]), float(p.xy[1])))
        self.last_looks = np.array([p.look for p in people], np.float32).reshape(-1, LOOK_SIZE)
        self._forget(t)
        return out

    @staticmethod
    def _bound(people: list[_Person], tracks: list[_Track]) -> np.ndarray:
        """Which people (rows) hold a camera track already bound to which floor track."""
        owners: dict[tuple[str, int], list[int]] = {}
        for j, tr in enumerate(tracks):
            for member in tr.bound:
                owners.setdefault(member, []).append(j)
        out = np.zeros((len(people), len(tracks)), bool)
        for i, p in enumerate(people):
            for member in p.members:
                if member[1] >= 0:
                    out[i, owners.get(member, [])] = True
        return out

    def _merge(self, placed: list[Placed]) -> list[_Person]:
        """One person per cluster of observations from different cameras: camera by camera
        (those seeing people nearest first), each camera's people are assigned to the
        clusters so far by how well the places agree (``SAME_PLACE``, within ``merge_radius``)
        plus appearance, or start their own."""
        from scipy.optimize import linear_sum_assignment

        people: list[_Person] = []
        order = sorted(placed, key=lambda c: -float(np.median(c.heights)) if len(c.ids) else 0.0)
        for cam in order:
            n = len(cam.ids)
            if n == 0:
                continue
            spread = cam.spreads()
            sure = _inverse(spread)  # once per camera, for every person it places
            match: dict[int, int] = {}
            if people:
                apart = cam.floor[:, None] - np.stack([p.xy for p in people])[None]
                both = spread[:, None] + _inverse(np.stack([p.sureness for p in people]))[None]
                far = _squared_mahalanobis(apart, both)
                looks = appearance_distance(cam.looks, np.stack([p.look for p in people]))
                fits = (
                    (far <= SAME_PLACE)
                    & (looks <= self.merge_look_gate)  # near, but clearly someone else
                    & (np.linalg.norm(apart, axis=2) <= self.merge_radius)
                )
                # in units of three standard deviations; the look weighs twice that since it
                # tells people in dark clothes apart (tuning stores, with the link veto at 0.07:
                # 1 -> 2 took the mean of (1 - correlation) and the three errors 0.288 -> 0.254)
                cost = np.where(fits, np.sqrt(far) / 3 + self.look_weight * looks, 1e6)
                rows, cols = linear_sum_assignment(cost)
                match = {int(r): int(c) for r, c in zip(rows, cols, strict=True) if fits[r, c]}
            for k in range(n):
                member = (cam.camera, int(cam.ids[k]))
                w = float(cam.heights[k]) ** 2
                if k in match:
                    p = people[match[k]]
                    p.add(cam.floor[k], sure[k], cam.looks[k], w)
                    p.members.append(member)
                else:
                    people.append(
                        _Person(
                            cam.floor[k].astype(np.float64),
                            cam.looks[k].copy(),
                            [member],
                            w,
                            sure[k],
                        )
                    )
        return people

    def _reidentify(self, t: float, p: _Person, taken: set[int]) -> int:
        best, best_cost = None, np.inf
        for tr in self.active.values():
            if tr.id in taken:
                continue
            gap = t - tr.last
            if gap <= 0 or gap > self.reid_window:
                continue
            reach = 1.0 + self.max_speed * gap
            d = float(np.linalg.norm(p.xy - tr.xy))
            look = float(appearance_distance(p.look[None], tr.look[None])[0, 0])
            if d > reach or look > self.reid_look_gate:
                continue
            cost = look + d / reach
            if cost < best_cost:
                best, best_cost = tr, cost
        if best is not None:
            return best.id
        track = _Track(self._next, p.xy.copy(), np.zeros(2), -1.0, p.look.copy(), seen=0)
        self._next += 1
        self.active[track.id] = track
        return track.id

    def _forget(self, t: float) -> None:
        for tid in [
            k for k, tr in self.active.items() if t - tr.last > self.reid_window and tr.last >= 0
        ]:
            del self.active[tid]
