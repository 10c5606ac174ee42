"""Image <-> floor-plan coordinates: a homography fitted to point pairs.

A camera sees the floor as a plane, so a 3x3 homography maps a pixel on the floor (a person's
foot point) to floor-plan metres. It is fitted from four or more pairs of (pixel, floor point)
by the normalised direct linear transform (Hartley & Zisserman, alg. 4.2), and refused with a
clear error when the points cannot define one (fewer than four, no four of them in general
position, a reflection folding the plane, or a badly conditioned fit). Three points on a line
are fine (floor-tile corners always have them) as long as four others are not.

The floor homography also fixes the whole camera (``camera_matrix``: its focal length and pose,
taking square pixels and the principal point at the frame's centre), so points above the floor
can be projected too: the top of a person's head, ``PERSON`` metres up (``plane_homography``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.typing import ArrayLike

MAX_CONDITION = 1e10  # past this, the fit is numerically meaningless
PERSON = 1.7  # metres: how tall a person stands, where it must be taken as known


class HomographyError(ValueError):
    """The point pairs cannot define a homography."""


class Homography:
    """A fitted mapping from image pixels to floor-plan metres (and back)."""

    def __init__(self, matrix: np.ndarray) -> None:
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (3, 3) or not np.all(np.isfinite(m)) or abs(np.linalg.det(m)) < 1e-12:
            raise HomographyError(f"expected an invertible 3x3 matrix, got {m!r}")
        self.matrix = m / m[2, 2] if m[2, 2] else m
        self.inverse = np.linalg.inv(self.matrix)

    @classmethod
    def fit(cls, image_points: ArrayLike, floor_points: ArrayLike) -> Homography:
        src = np.asarray(image_points, dtype=np.float64)
        dst = np.asarray(floor_points, dtype=np.float64)
        if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape:
            raise HomographyError(
                f"expected N pairs of 2-D points, got image {src.shape} and floor {dst.shape}"
            )
        if len(src) < 4:
            raise HomographyError(f"a homography needs at least 4 point pairs, got {len(src)}")
        if not _four_in_general_position(src, dst):
            raise HomographyError(
                f"no four of the {len(src)} pairs are in general position (in the image and on "
                "the floor, every choice of four has three points on one line): add points "
                "spread over the floor"
            )
        ts, tsrc = _normaliser(src)
        td, tdst = _normaliser(dst)
        rows = []
        for (x, y), (u, v) in zip(tsrc, tdst, strict=True):
            rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
            rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
        a = np.asarray(rows)
        _, sing, vt = np.linalg.svd(a)
        if sing[-2] < 1e-12 or sing[0] / sing[-2] > MAX_CONDITION:
            raise HomographyError("the point pairs are degenerate: they do not fix a homography")
        h = vt[-1].reshape(3, 3)
        matrix = np.linalg.inv(td) @ h @ ts
        fitted = cls(matrix)
        # A plane seen by a camera maps without folding: every pair keeps its orientation.
        if not _same_orientation(src, dst):
            raise HomographyError(
                "the floor points are a mirror image of the image points: check the order of "
                "the pairs (x and y swapped, or a point assigned to the wrong corner)"
            )
        return fitted

    def to_floor(self, pixels: np.ndarray) -> np.ndarray:
        return _apply(self.matrix, pixels)

    def to_image(self, floor: np.ndarray) -> np.ndarray:
        return _apply(self.inverse, floor)

    def jacobian(self, pixels: np.ndarray) -> np.ndarray:
        """How the floor point moves per pixel at each of ``pixels`` (n, 2): (n, 2, 2), rows
        the floor's x and y, columns the image's u and v."""
        uv = np.asarray(pixels, np.float64).reshape(-1, 2)
        m = self.matrix
        p = np.c_[uv, np.ones(len(uv))] @ m.T  # (x', y', w) for each pixel
        w = p[:, 2:3]
        # d(x'/w)/du = (m00 - x m20) / w, and likewise for the other three entries
        x, y = p[:, 0:1] / w, p[:, 1:2] / w
        row_x = (m[0, :2][None] - x * m[2, :2][None]) / w
        row_y = (m[1, :2][None] - y * m[2, :2][None]) / w
        return np.stack([row_x, row_y], axis=1)

    def error(self, image_points: np.ndarray, floor_points: np.ndarray) -> float:
        """Largest distance (floor units) between mapped image points and their floor points."""
        return float(np.max(self.errors(image_points, floor_points)))

    def errors(self, image_points: np.ndarray, floor_points: np.ndarray) -> np.ndarray:
        """Each pair's reprojection error: how far (floor units) its image point maps from its
        floor point."""
        mapped = self.to_floor(np.asarray(image_points, dtype=np.float64))
        return np.asarray(np.linalg.norm(mapped - np.asarray(floor_points), axis=1))


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    h = np.c_[p, np.ones(len(p))] @ m.T
    return np.asarray(h[:, :2] / h[:, 2:3])


def _normaliser(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centre = pts.mean(axis=0)
    scale = np.sqrt(2) / max(np.mean(np.linalg.norm(pts - centre, axis=1)), 1e-12)
    t = np.array([[scale, 0, -scale * centre[0]], [0, scale, -scale * centre[1]], [0, 0, 1]])
    return t, (pts - centre) * scale


def _area2(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))


def _degenerate(pts: np.ndarray, i: int, j: int, k: int) -> bool:
    """Whether points i, j, k lie on one line (relative to the spread of all the points)."""
    span = max(float(np.ptp(pts, axis=0).max()), 1e-12)
    return abs(_area2(pts[i], pts[j], pts[k])) < 1e-6 * span * span


def camera_matrix(to_image: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """The 3x4 projection of the camera whose floor-to-image homography is ``to_image``,
    taking square pixels and the principal point at the frame's centre (the focal length and
    the pose then follow from the homography: Zhang's constraints on a plane's rotation); None
    when no positive focal length fits (a camera looking straight down, a bad calibration)."""
    centre = np.array([[1.0, 0.0, -size[0] / 2], [0.0, 1.0, -size[1] / 2], [0.0, 0.0, 1.0]])
    h = centre @ to_image
    (a1, a2, _), (b1, b2, _), (c1, c2, _) = h
    # r1 . r2 = 0 and |r1| = |r2|, for K = diag(f, f, 1): two estimates of f^2
    guesses = []
    if abs(c1 * c2) > 1e-12:
        guesses.append(-(a1 * a2 + b1 * b2) / (c1 * c2))
    if abs(c1 * c1 - c2 * c2) > 1e-12:
        guesses.append(-(a1 * a1 + b1 * b1 - a2 * a2 - b2 * b2) / (c1 * c1 - c2 * c2))
    guesses = [g for g in guesses if g > 0]
    if not guesses:
        return None
    f = math.sqrt(float(np.median(guesses)))
    k = np.diag([f, f, 1.0])
    m = np.linalg.inv(k) @ h
    scale = (np.linalg.norm(m[:, 0]) + np.linalg.norm(m[:, 1])) / 2
    r1, r2, t = m[:, 0] / scale, m[:, 1] / scale, m[:, 2] / scale
    # The floor the frame shows is in front of the camera, at positive depth: the point at the
    # frame's bottom centre (a floor point's depth has the sign of its projective scale, the
    # inverse of the third coordinate the homography's inverse gives that pixel).
    if np.linalg.solve(to_image, [size[0] / 2, size[1] - 1.0, 1.0])[2] < 0:
        r1, r2, t = -r1, -r2, -t
    r3 = np.cross(r1, r2)
    centre_of = -np.c_[r1, r2, r3].T @ t
    if centre_of[2] < 0:  # up is towards the camera, which hangs above the floor
        r3 = -r3
    return np.asarray(np.linalg.inv(centre) @ k @ np.c_[r1, r2, r3, t])


def project(projection: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (n, 3) in floor metres (z up) to pixels (n, 2) through a 3x4 ``projection``
    (``camera_matrix``'s), and their depths (n,): positive in front of the camera."""
    p = np.c_[points, np.ones(len(points))] @ projection.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(p[:, :2] / p[:, 2:3]), np.asarray(p[:, 2])


def plane_homography(projection: np.ndarray, height: float) -> Homography:
    """Image -> floor for points ``height`` metres above the floor (the top of a person's head)
    in the camera whose 3x4 projection is ``projection``: a pixel's floor point below it."""
    m = np.c_[projection[:, 0], projection[:, 1], height * projection[:, 2] + projection[:, 3]]
    return Homography(np.linalg.inv(m))


def _four_in_general_position(src: np.ndarray, dst: np.ndarray) -> bool:
    """Some four pairs with no three on a line, in the image and on the floor alike: what a
    homography needs. Points on floor-tile corners have many collinear triples, and that is
    fine as long as four of them are not."""
    n = len(src)
    for quad in itertools.combinations(range(n), 4):
        if not any(
            _degenerate(pts, *tri) for pts in (src, dst) for tri in itertools.combinations(quad, 3)
        ):
            return True
    return False


MISFOLDED = 0.1  # the share of triangles that may turn the other way (a point mistyped a little)


def _same_orientation(src: np.ndarray, dst: np.ndarray) -> bool:
    # Image y points down and floor y may point up: both are allowed if consistent across
    # triangles, so the proper triangles (three points not on a line, in both) must turn the
    # same way. Triangles of collinear points (floor-tile corners) say nothing; a point a little
    # off (its pair's reprojection error says which) turns a few; pairs in the wrong order, or
    # x and y swapped, turn many.
    turns = []
    for tri in itertools.combinations(range(len(src)), 3):
        if _degenerate(src, *tri) or _degenerate(dst, *tri):
            continue
        a, b, c = tri
        turns.append(
            np.sign(_area2(src[a], src[b], src[c])) * np.sign(_area2(dst[a], dst[b], dst[c]))
        )
    if not turns:
        return True
    one_way = sum(t > 0 for t in turns)
    return bool(min(one_way, len(turns) - one_way) <= MISFOLDED * len(turns))
