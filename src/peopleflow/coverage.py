"""Where the cameras see the floor: how many cameras show each spot of the floor plan.

A camera shows a floor point when the point, mapped into the image by the camera's homography,
lands inside its frame and in front of the camera (a homography also maps points behind the
camera's horizon, with the opposite sign of the projective scale). The calibration's own floor
points are in view by definition, so their sign is the one "in front" has. A point just below
the frame's bottom edge is shown too where a person standing on it shows their head (a
``PERSON`` metres up) in the frame: the trackers place such people by their head.

The report's noise filter uses the count: a person where three cameras look should be seen at
nearly every instant, one seen by a single camera on a crowded street far less often. And a
zone that no camera shows, or shows in part, is counted only where it is seen: the report says
each zone's share in view, and a run warns at start-up about zones mostly out of view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from peopleflow.config import Camera, FloorPlan
from peopleflow.geometry import PERSON, camera_matrix, project

CELL = 0.25  # metres: the grid the count is kept on


@dataclass(frozen=True)
class Coverage:
    """How many cameras show each ``cell`` x ``cell`` metre square (row 0 is y in [0, cell))."""

    cell: float
    counts: np.ndarray  # (rows, cols) int

    @classmethod
    def everywhere(cls, plan: FloorPlan, cameras: int = 1) -> Coverage:
        """``cameras`` cameras on every spot: for when the frame sizes are not known."""
        rows, cols = _grid_shape(plan, CELL)
        return cls(CELL, np.full((rows, cols), cameras, np.int32))

    @classmethod
    def of(
        cls, plan: FloorPlan, cameras: tuple[Camera, ...], sizes: Mapping[str, tuple[int, int]]
    ) -> Coverage:
        """The count over ``plan`` for the cameras whose frame size (width, height) is known
        (a camera that could not be opened shows nothing)."""
        rows, cols = _grid_shape(plan, CELL)
        centres = _cell_centres(rows, cols, CELL)
        counts = np.zeros(rows * cols, np.int32)
        for cam in cameras:
            if cam.name in sizes:
                counts += shows(cam, sizes[cam.name], centres)
        return cls(CELL, counts.reshape(rows, cols))

    def at(self, xy: np.ndarray) -> np.ndarray:
        """The count at floor points (n, 2); 0 off the plan."""
        pts = np.asarray(xy, np.float64).reshape(-1, 2)
        rows, cols = self.counts.shape
        c = np.floor(pts[:, 0] / self.cell).astype(np.int64)
        r = np.floor(pts[:, 1] / self.cell).astype(np.int64)
        inside = (c >= 0) & (c < cols) & (r >= 0) & (r < rows)
        out = np.zeros(len(pts), np.int32)
        out[inside] = self.counts[r[inside], c[inside]]
        return out

    def zone_shares(self, plan: FloorPlan) -> dict[str, float]:
        """Each zone's share of floor that at least one camera shows (by the grid's cells
        whose centres lie inside it; a zone smaller than a cell, by its corners)."""
        rows, cols = self.counts.shape
        centres = _cell_centres(rows, cols, self.cell)
        seen = self.counts.ravel() > 0
        out = {}
        for zone in plan.zones:
            inside = zone.contains(centres)
            cells = seen[inside] if inside.any() else self.at(zone.polygon) > 0
            out[zone.name] = float(np.mean(cells)) if len(cells) else 0.0
        return out

    def share_seen(self) -> float:
        """The share of the floor plan that at least one camera shows."""
        return float((self.counts > 0).mean()) if self.counts.size else 0.0


def shows(cam: Camera, size: tuple[int, int], floor: np.ndarray) -> np.ndarray:
    """Which floor points (n, 2) camera ``cam``, with frames of ``size`` (w, h), shows."""
    width, height = size
    inv = cam.homography.inverse
    pts = np.asarray(floor, np.float64).reshape(-1, 2)
    proj = np.c_[pts, np.ones(len(pts))] @ inv.T
    known = np.c_[cam.calibration[:, 2:], np.ones(len(cam.calibration))] @ inv.T
    front = np.sign(np.median(known[:, 2])) or 1.0
    ahead = proj[:, 2] * front > 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        u = proj[:, 0] / proj[:, 2]
        v = proj[:, 1] / proj[:, 2]
    across = ahead & (u >= 0) & (u < width)
    feet = across & (v >= 0) & (v < height)
    projection = camera_matrix(inv, size)
    if projection is None:
        return np.asarray(feet)
    below = across & (v >= height)
    top, depth = project(projection, np.c_[pts, np.full(len(pts), PERSON)])
    hu, hv = top[:, 0], top[:, 1]
    head = (depth > 0) & (hu >= 0) & (hu < width) & (hv > 3) & (hv < height)
    return np.asarray(feet | (below & head))


def _cell_centres(rows: int, cols: int, cell: float) -> np.ndarray:
    """The floor points (rows * cols, 2) at the centres of the grid's cells, row by row."""
    ys, xs = np.mgrid[0:rows, 0:cols]
    return np.asarray(np.c_[(xs.ravel() + 0.5) * cell, (ys.ravel() + 0.5) * cell])


def _grid_shape(plan: FloorPlan, cell: float) -> tuple[int, int]:
    return max(1, int(np.ceil(plan.height / cell))), max(1, int(np.ceil(plan.width / cell)))
