"""Render simulated shoppers into perspective camera views: the synthetic store's video.

Each camera is a pinhole camera on the store's wall, looking down into the store. The static
scene (a tiled floor with shelf footprints and zone mats, walls, ceiling) is ray-cast once
per camera; every frame then draws the people far to near (so near people occlude far ones),
each with a soft ground shadow. A person is a figure with human proportions (head 1/7.5 of
the height, shoulders 0.27, tapered arms and legs that swing while walking, shoes, hair),
side-lit shading and clothes of their own colours, drawn at 3x and reduced for anti-aliasing;
seen from the side while walking they are narrower than seen from the front.

The camera's calibration (image point to floor point pairs) comes from the same projection
that drew the frames, and each frame's ground truth (who is where, their box, how much of
them is visible) comes with it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from peopleflow.config import FloorPlan
from peopleflow.simulate import Shopper

WALL_HEIGHT = 3.2
SUPERSAMPLE = 3
SKIN = ((80, 110, 160), (95, 140, 200), (60, 85, 120), (120, 160, 215), (45, 65, 95))
HAIR = ((25, 25, 30), (40, 60, 90), (20, 35, 60), (150, 150, 150), (60, 110, 170))


@dataclass(frozen=True)
class PinholeCamera:
    name: str
    position: tuple[float, float, float]  # metres on the floor plan, height
    yaw: float  # degrees on the floor plan, 0 = +x
    pitch: float  # degrees below the horizon
    size: tuple[int, int] = (640, 360)  # width, height
    hfov: float = 72.0  # degrees

    @property
    def focal(self) -> float:
        return self.size[0] / 2 / math.tan(math.radians(self.hfov) / 2)

    @functools.cached_property
    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forward, right and down unit vectors in world coordinates."""
        yaw, pitch = math.radians(self.yaw), math.radians(self.pitch)
        fwd = np.array(
            [math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), -math.sin(pitch)]
        )
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        return fwd, right, np.cross(fwd, right)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (n, 2) of world points (n, 3), and their depth along the view (n,)."""
        fwd, right, down = self.axes
        rel = np.asarray(points, np.float64).reshape(-1, 3) - np.array(self.position)
        depth = rel @ fwd
        safe = np.where(depth > 1e-6, depth, 1e-6)
        w, h = self.size
        uv = np.c_[
            w / 2 + self.focal * (rel @ right) / safe, h / 2 + self.focal * (rel @ down) / safe
        ]
        return uv, depth

    def rays(self) -> np.ndarray:
        """The world direction of every pixel's centre, (h, w, 3)."""
        fwd, right, down = self.axes
        w, h = self.size
        u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        return np.asarray(
            fwd[None, None] * self.focal
            + right[None, None] * (u - w / 2)[..., None]
            + down[None, None] * (v - h / 2)[..., None]
        )

    def calibration(self, plan: FloorPlan, pairs: int = 8) -> np.ndarray:
        """Point pairs ``[u, v, x, y]`` from this camera's projection: floor points it sees
        well (a grid over the floor, kept where it lands inside the frame)."""
        # Scattered floor points (no grid: grid points line up, and a fit wants no three in line).
        rng = np.random.default_rng(sum(map(ord, self.name)))
        xy = rng.uniform([0.3, 0.3], [plan.width - 0.3, plan.height - 0.3], (2000, 2))
        floor = np.c_[xy, np.zeros(len(xy))]
        uv, depth = self.project(floor)
        w, h = self.size
        ok = (
            (depth > 0.5)
            & (uv[:, 0] > 20)
            & (uv[:, 0] < w - 20)
            & (uv[:, 1] > 20)
            & (uv[:, 1] < h - 20)
        )
        uv, floor = uv[ok], floor[ok]
        if len(uv) < 4:
            raise ValueError(f"camera {self.name} sees too little of the floor to calibrate")
        # Spread the pairs: the points nearest each frame corner and the centre, then more.
        targets = np.array(
            [
                [0, 0],
                [w, 0],
                [w, h],
                [0, h],
                [w / 2, h / 2],
                [w / 2, 0],
                [w / 2, h],
                [0, h / 2],
                [w, h / 2],
            ],
            dtype=np.float64,
        )
        chosen: list[int] = []
        for target in targets[:pairs]:
            order = np.argsort(np.linalg.norm(uv - target, axis=1))
            chosen.append(int(next(i for i in order if i not in chosen)))
        return np.asarray(np.c_[np.round(uv[chosen], 2), floor[chosen, :2]])


@dataclass(frozen=True)
class Truth:
    """One person in one frame: their box (x0, y0, x1, y1 pixels, unclipped), the floor
    position of their feet and the fraction of their figure that is visible."""

    person: int
    box: tuple[float, float, float, float]
    floor: tuple[float, float]
    visible: float


class Renderer:
    """Draws frames of one camera; the static scene is built once."""

    def __init__(self, camera: PinholeCamera, plan: FloorPlan, seed: int = 0) -> None:
        self.camera, self.plan = camera, plan
        self.background = _scene(camera, plan, seed)
        self.noise = np.random.default_rng(seed + 7).normal(0, 3.0, self.background.shape)

    def frame(
        self, people: list[tuple[Shopper, np.ndarray, np.ndarray, float]]
    ) -> tuple[np.ndarray, list[Truth]]:
        """One frame of ``people``: (shopper, floor xy, heading xy, walking phase) each."""
        cam = self.camera
        image = self.background.copy()
        ids = np.full(image.shape[:2], -1, np.int32)
        w, h = cam.size
        placed = []
        for shopper, xy, heading, phase in people:
            foot = np.array([xy[0], xy[1], 0.0])
            head = foot + [0.0, 0.0, shopper.height]
            uv, depth = cam.project(np.stack([foot, head]))
            if depth.min() < 0.6:
                continue
            height_px = float(uv[0, 1] - uv[1, 1])
            x0 = uv[0, 0] - height_px * 0.2
            if height_px < 8 or uv[1, 1] > h or uv[0, 1] < 0 or x0 > w or x0 + height_px * 0.4 < 0:
                continue
            placed.append((float(depth[0]), shopper, uv, heading, phase, xy))
        placed.sort(key=lambda p: -p[0])  # far first: near people cover them
        drawn: dict[int, tuple[int, tuple[float, float, float, float], tuple[float, float]]] = {}
        for *_, xy in placed:
            _shadow(image, cam, np.asarray(xy, np.float64))
        fwd = cam.axes[0][:2]
        for _, shopper, uv, heading, phase, xy in placed:
            side = abs(float(np.dot(heading, fwd))) if np.linalg.norm(heading) > 0 else 0.0
            moving = float(np.linalg.norm(heading) > 0)
            pixels, box = _figure(
                image,
                ids,
                shopper,
                uv[0],
                uv[1],
                1.0 - 0.4 * (1 - side) * moving,
                phase if moving else 0.0,
            )
            drawn[shopper.id] = (pixels, box, (float(xy[0]), float(xy[1])))
        counts = np.bincount(ids.ravel() + 1, minlength=1)
        truths = []
        for pid, (pixels, box, floor) in drawn.items():
            seen = int(counts[pid + 1]) if pid + 1 < len(counts) else 0
            truths.append(Truth(pid, box, floor, seen / max(pixels, 1)))
        # A real lens is not perfectly sharp, and a real sensor is not noiseless.
        image = cv2.GaussianBlur(image, (0, 0), 0.9)
        image = np.clip(image + self.noise, 0, 255).astype(np.uint8)
        return image, truths


def _scene(cam: PinholeCamera, plan: FloorPlan, seed: int) -> np.ndarray:
    """The empty store as this camera sees it: ray-cast floor, walls and ceiling (float32)."""
    rng = np.random.default_rng(seed)
    tex, per_m = _floor_texture(plan, rng)
    d = cam.rays()
    cx, cy, cz = cam.position
    w, h = plan.width, plan.height
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[..., 2] < 0, -cz / d[..., 2], np.inf)
        tx = np.where(
            d[..., 0] > 0, (w - cx) / d[..., 0], np.where(d[..., 0] < 0, -cx / d[..., 0], np.inf)
        )
        ty = np.where(
            d[..., 1] > 0, (h - cy) / d[..., 1], np.where(d[..., 1] < 0, -cy / d[..., 1], np.inf)
        )
    t_wall = np.minimum(tx, ty)
    floor_hit = t_floor <= t_wall
    fx = (cx + t_floor * d[..., 0]) * per_m
    fy = (cy + t_floor * d[..., 1]) * per_m
    fx = np.where(floor_hit, fx, 0).astype(np.float32)
    fy = np.where(floor_hit, fy, 0).astype(np.float32)
    floor = cv2.remap(tex, fx, fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    out = floor.astype(np.float32)
    # Walls: a band of shelving colour up to 2 m, plain paint above; ceiling panels beyond.
    z = cz + t_wall * d[..., 2]
    along = np.where(tx < ty, cy + t_wall * d[..., 1], cx + t_wall * d[..., 0])
    paint = np.array([200, 205, 210], np.float32)
    shelf = np.array([90, 120, 150], np.float32)
    band = (z < 2.0)[..., None]
    stripes = (np.floor(z * 4) % 2 == 0)[..., None] * 25 + ((np.floor(along * 2) % 3) == 0)[
        ..., None
    ] * 15
    wall = np.where(band, shelf + stripes, paint - 20 * (tx < ty)[..., None])
    ceiling = (
        np.array([225, 228, 230], np.float32)
        + 20
        * (
            (np.floor((cx + t_wall * d[..., 0]) / 1.5) + np.floor((cy + t_wall * d[..., 1]) / 1.5))
            % 2
            == 0
        )[..., None]
    )
    wall = np.where((z > WALL_HEIGHT)[..., None], np.minimum(ceiling, 255), wall)
    out = np.where(floor_hit[..., None], out, wall)
    # Light falls off with distance from the camera: a little vignetting.
    dist = np.where(floor_hit, t_floor, t_wall) * np.linalg.norm(d, axis=-1)
    out *= (1.05 - 0.25 * np.clip(dist / 25, 0, 1))[..., None]
    return out.astype(np.float32)


def _floor_texture(plan: FloorPlan, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The floor seen from above at 40 px/m: 0.6 m tiles with grout and speckle, darker mats
    under the zones, shelf units either side of each aisle."""
    per_m = 40.0
    hh, ww = int(plan.height * per_m), int(plan.width * per_m)
    tile = int(0.6 * per_m)
    base = np.array([178, 184, 188], np.float32)
    tex = np.empty((hh, ww, 3), np.float32)
    tex[:] = base
    rows, cols = hh // tile + 1, ww // tile + 1
    shade = rng.normal(0, 6, (rows, cols)).astype(np.float32)
    tex += np.kron(shade, np.ones((tile, tile), np.float32))[:hh, :ww, None]
    tex[::tile] -= 45
    tex[:, ::tile] -= 45
    tex += rng.normal(0, 5, (hh, ww, 1)).astype(np.float32)
    for zone in plan.zones:
        poly = (zone.polygon * per_m).astype(np.int32)
        mask = np.zeros((hh, ww), np.uint8)
        cv2.fillPoly(mask, [poly], 1)
        tex[mask.astype(bool)] *= 0.88
        if zone.name.startswith("aisle"):
            x0, y0 = zone.polygon.min(axis=0)
            x1, y1 = zone.polygon.max(axis=0)
            for sx in (x0 - 0.6, x1 + 0.05):  # shelf footprints beside the aisle
                p0 = (int(sx * per_m), int((y0 + 0.3) * per_m))
                p1 = (int((sx + 0.55) * per_m), int((y1 - 0.3) * per_m))
                cv2.rectangle(tex, p0, p1, (60, 75, 95), -1)
                for k in range(p0[1], p1[1], 12):
                    colour = tuple(float(c) for c in rng.integers(40, 200, 3))
                    cv2.rectangle(tex, (p0[0] + 3, k), (p1[0] - 3, k + 8), colour, -1)
    return np.clip(tex, 0, 255).astype(np.uint8), per_m


def _shadow(image: np.ndarray, cam: PinholeCamera, xy: np.ndarray) -> None:
    """A soft dark ellipse on the floor under the feet (its outline projected from the floor)."""
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ring = np.c_[xy[0] + 0.32 * np.cos(angles), xy[1] + 0.22 * np.sin(angles), np.zeros(16)]
    uv, depth = cam.project(ring)
    if depth.min() <= 0.3:
        return
    x0, y0 = np.floor(uv.min(axis=0)).astype(int) - 4
    x1, y1 = np.ceil(uv.max(axis=0)).astype(int) + 4
    h, w = image.shape[:2]
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        return
    patch = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(patch, [np.round(uv - [x0, y0]).astype(np.int32)], 1.0, cv2.LINE_AA)
    k = max(3, ((x1 - x0) // 6) | 1)
    patch = cv2.GaussianBlur(patch, (k, k), 0)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    sub = patch[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0, None]
    image[cy0:cy1, cx0:cx1] *= 1 - 0.45 * sub


def _figure(
    image: np.ndarray,
    ids: np.ndarray,
    shopper: Shopper,
    foot: np.ndarray,
    head: np.ndarray,
    width: float,
    phase: float,
) -> tuple[int, tuple[float, float, float, float]]:
    """Draw one person standing on ``foot`` with the top of the head at ``head`` (pixels);
    returns how many pixels the figure covers and its box."""
    height = float(foot[1] - head[1])
    s = SUPERSAMPLE
    cw, ch = int(height * 0.56 * s) + 4, int(height * 1.02 * s) + 4
    ox = cw / 2  # canvas x of the body's axis
    colour = np.zeros((ch, cw, 3), np.float32)
    alpha = np.zeros((ch, cw), np.float32)
    torso, legs = (np.array(c, np.float32) for c in shopper.colours)
    skin = np.array(SKIN[shopper.id % len(SKIN)], np.float32)
    hair = np.array(HAIR[(shopper.id // 5) % len(HAIR)], np.float32)
    shoes = np.array([30, 30, 35], np.float32)
    hs = height * s

    def pt(x: float, y: float) -> tuple[float, float]:
        return (ox + x * hs, y * hs + 1)

    def poly(points: list[tuple[float, float]], col: np.ndarray) -> None:
        arr = np.round(np.array([pt(x, y) for x, y in points]) * 16).astype(np.int32)
        cv2.fillPoly(colour, [arr], col.tolist(), cv2.LINE_AA, shift=4)
        cv2.fillPoly(alpha, [arr], 1.0, cv2.LINE_AA, shift=4)

    def limb(
        x0: float, y0: float, x1: float, y1: float, w0: float, w1: float, col: np.ndarray
    ) -> None:
        dx, dy = x1 - x0, y1 - y0
        n = math.hypot(dx, dy) or 1.0
        px, py = -dy / n, dx / n
        poly(
            [
                (x0 + px * w0 / 2, y0 + py * w0 / 2),
                (x1 + px * w1 / 2, y1 + py * w1 / 2),
                (x1 - px * w1 / 2, y1 - py * w1 / 2),
                (x0 - px * w0 / 2, y0 - py * w0 / 2),
            ],
            col,
        )

    def ellipse(x: float, y: float, rx: float, ry: float, col: np.ndarray) -> None:
        c = (round(pt(x, y)[0] * 16), round(pt(x, y)[1] * 16))
        axes = (max(1, round(rx * hs * 16)), max(1, round(ry * hs * 16)))
        cv2.ellipse(colour, c, axes, 0, 0, 360, col.tolist(), -1, cv2.LINE_AA, 4)
        cv2.ellipse(alpha, c, axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA, 4)

    swing = math.sin(phase) * 0.09
    sw = 0.135 * width  # half the shoulder width (0.27 of the height)
    arm = 0.058 * width
    hand_x = sw + 0.012  # arms hang at the sides, a little away from the hips

    def arm_at(sign: float, shade: float, lift: float) -> None:
        elbow = (sign * (sw + 0.005) + lift * 0.4, 0.32)
        hand = (sign * hand_x + lift, 0.445)
        limb(sign * (sw - 0.02), 0.185, *elbow, arm, arm * 0.85, torso * shade)
        limb(*elbow, *hand, arm * 0.85, arm * 0.6, torso * shade)
        ellipse(hand[0], hand[1] + 0.012, 0.02, 0.026, skin * shade)

    # Back arm, legs, torso, front arm, head: roughly back to front.
    arm_at(-1.0, 0.8, -swing * 0.6)
    for sign, shade in ((1.0, 1.0), (-1.0, 0.88)):
        knee = (sign * 0.048 * width + sign * swing * 0.5, 0.73)
        limb(sign * 0.052 * width, 0.51, *knee, 0.1 * width, 0.07, legs * shade)
        limb(*knee, sign * 0.045 * width + sign * swing, 0.955, 0.07, 0.052, legs * shade)
        ellipse(sign * 0.045 * width + sign * swing + 0.01, 0.972, 0.042, 0.022, shoes)
    # Torso: shoulders, a narrower waist, hips; a collar of skin at the neck.
    poly(
        [
            (-sw, 0.175),
            (sw, 0.175),
            (0.092 * width, 0.38),
            (0.105 * width, 0.53),
            (-0.105 * width, 0.53),
            (-0.092 * width, 0.38),
        ],
        torso,
    )
    poly(
        [
            (-0.105 * width, 0.48),
            (0.105 * width, 0.48),
            (0.11 * width, 0.56),
            (-0.11 * width, 0.56),
        ],
        legs,
    )
    ellipse(0.0, 0.18, sw, 0.028, torso)  # rounded shoulders
    arm_at(1.0, 0.95, swing * 0.6)
    limb(0.0, 0.115, 0.0, 0.175, 0.048, 0.052, skin * 0.8)  # neck
    ellipse(0.0, 0.067, 0.047, 0.066, skin)  # head: 1/7.5 of the height
    ellipse(0.0, 0.042, 0.051, 0.046, hair)
    ellipse(0.0, 0.09, 0.03, 0.008, skin * 0.75)  # the shadow under the brow
    # Cloth is not flat colour: folds and weave as soft noise.
    coarse = np.random.default_rng(shopper.id).normal(
        0, 0.09, (ch // (3 * s) + 2, cw // (3 * s) + 2)
    )
    folds = cv2.resize(coarse.astype(np.float32), (cw, ch), interpolation=cv2.INTER_CUBIC)
    colour *= (1.0 + folds)[..., None]
    # Reduce to the frame's scale (anti-aliasing) and blend in at the foot point.
    out_w, out_h = max(1, round(cw / s)), max(1, round(ch / s))
    small = cv2.resize(colour, (out_w, out_h), interpolation=cv2.INTER_AREA)
    # Side light: brighter on the left, darker on the right and lower down.
    xs = np.linspace(0, 1, out_w, dtype=np.float32)[None, :, None]
    ys = np.linspace(0, 1, out_h, dtype=np.float32)[:, None, None]
    # Rounded bodies: darker towards both edges of the figure.
    small *= 1.12 - 0.22 * xs - 0.12 * ys - 0.2 * (2 * xs - 1) ** 2
    a = cv2.resize(alpha, (out_w, out_h), interpolation=cv2.INTER_AREA)
    left = int(round(foot[0] - out_w / 2))
    top = int(round(foot[1] - out_h * (1.0 / 1.02)))
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + out_w, w), min(top + out_h, h)
    box = (
        float(foot[0] - height * 0.2),
        float(head[1]),
        float(foot[0] + height * 0.2),
        float(foot[1]),
    )
    cols = np.nonzero(a.max(axis=0) > 0.5)[0]
    if len(cols):
        box = (float(left + cols[0]), float(head[1]), float(left + cols[-1] + 1), float(foot[1]))
    if x1 <= x0 or y1 <= y0:
        return int((a > 0.5).sum()), box
    sa = a[y0 - top : y1 - top, x0 - left : x1 - left]
    sc = small[y0 - top : y1 - top, x0 - left : x1 - left]
    region = image[y0:y1, x0:x1]
    with np.errstate(invalid="ignore", divide="ignore"):
        premult = np.where(sa[..., None] > 0, sc / np.maximum(sa[..., None], 1e-6), 0)
    region[:] = region * (1 - sa[..., None]) + premult * sa[..., None]
    ids[y0:y1, x0:x1][sa > 0.5] = shopper.id
    return int((a > 0.5).sum()), box
