"""Store layouts for the generator: the default store, and stores drawn from a seed.

A ``Layout`` is a floor plan with its zones, the points on the walls where people come in and
go out (one per door zone), and where cameras can hang. The default store (seed 0 of
``drawn_layout`` is not it: ``default_layout()`` is) is the one the thresholds were tuned on;
drawn layouts vary the shape (14-30 x 10-20 m), the number and width of the aisles, where the
promotion table and the checkout stand, and one or two doors (an entrance, and an exit on
another stretch of wall).

Cameras hang on the walls at fractions of the walls' lengths, each looking into the store;
their mounting height, tilt, field of view and resolution are the caller's (``cameras_for``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from peopleflow.config import FloorPlan
from peopleflow.render import PinholeCamera
from peopleflow.simulate import DOOR, default_plan, rect_zone

# Where cameras hang, as fractions of the store's width and depth, and which way they look
# (degrees on the plan). The first two watch the door and the checkout from mid-store.
MOUNTS = (
    (0.4, 0.0, 150.0),
    (0.4, 1.0, 210.0),
    (0.5, 0.0, 90.0),
    (0.5, 1.0, 270.0),
    (1.0, 1.0, 212.0),
    (1.0, 0.0, 148.0),
    (1.0, 0.5, 180.0),
    (0.0, 0.5, 0.0),
    (0.0, 0.0, 32.0),
    (0.0, 1.0, 328.0),
    (0.75, 0.0, 110.0),
    (0.75, 1.0, 250.0),
)
WALL_GAP = 0.2  # metres between a camera and its wall


@dataclass(frozen=True)
class Layout:
    plan: FloorPlan
    doors: tuple[np.ndarray, ...]  # one wall point per door zone, in the plan's door order


def default_layout() -> Layout:
    """The default store (``simulate.default_plan``), its one door at ``simulate.DOOR``."""
    return Layout(default_plan(), (DOOR,))


def drawn_layout(seed: int, doors: int = 1) -> Layout:
    """A store drawn from ``seed``: its shape, aisles, promotion table, checkout, and
    ``doors`` (1 or 2) doors on the front wall."""
    if doors not in (1, 2):
        raise ValueError(f"doors: 1 or 2, got {doors}")
    rng = random.Random(seed)
    width = round(rng.uniform(14.0, 30.0) * 2) / 2
    depth = round(rng.uniform(10.0, 20.0) * 2) / 2
    if doors == 2:
        width = max(width, 17.0)  # room for the promotion table between the doors
    zones = []
    door_points = []
    left = rng.uniform(0.0, 1.5)  # the entrance's distance from the left wall
    zones.append(rect_zone("entrance", left, 0.0, left + 3.5, 3.0, door=True))
    door_points.append(np.array([left + 1.5, 0.3]))
    front_right = width - 0.5  # where the front's free wall ends
    if doors == 2:
        right = width - rng.uniform(1.0, 2.5)
        zones.append(rect_zone("exit", right - 3.0, 0.0, right, 3.0, door=True))
        door_points.append(np.array([right - 1.5, 0.3]))
        front_right = right - 3.5
    # The checkout along a side wall, behind the entrance or on the far side.
    if rng.random() < 0.5:
        zones.append(rect_zone("checkout", 0.5, depth - 5.0, 3.5, depth - 1.0))
    else:
        zones.append(rect_zone("checkout", width - 3.5, depth - 5.0, width - 0.5, depth - 1.0))
    # Aisles run front to back between the side zones; shelves stand beside each.
    aisle_width = rng.uniform(1.8, 2.4)
    spacing = aisle_width + rng.uniform(1.4, 2.2)
    x = 5.0
    k = 1
    while x + aisle_width <= width - 4.0:
        zones.append(rect_zone(f"aisle {k}", x, 3.5, x + aisle_width, depth - 1.0))
        x += spacing
        k += 1
    # The promotion table in the front, between the doors.
    centre = rng.uniform(left + 6.0, max(left + 6.0, front_right - 2.0))
    zones.append(rect_zone("promotion", centre - 2.0, 0.5, centre + 2.0, 2.5))
    return Layout(FloorPlan(width, depth, tuple(zones)), tuple(door_points))


def cameras_for(
    plan: FloorPlan,
    count: int,
    size: tuple[int, int] = (640, 360),
    height: float = 3.4,
    pitch: float = 30.0,
    hfov: float = 72.0,
) -> list[PinholeCamera]:
    """``count`` cameras on the walls of ``plan`` (``MOUNTS``), ``height`` m up, tilted
    ``pitch`` degrees down, each ``size`` (width, height) pixels and ``hfov`` degrees wide."""
    if not 1 <= count <= len(MOUNTS):
        raise ValueError(f"cameras: 1 to {len(MOUNTS)}, got {count}")
    w, h = plan.width, plan.height
    cams = []
    for i, (fx, fy, yaw) in enumerate(MOUNTS[:count]):
        x = min(max(fx * w, WALL_GAP), w - WALL_GAP)
        y = min(max(fy * h, WALL_GAP), h - WALL_GAP)
        cams.append(PinholeCamera(f"cam{i + 1}", (x, y, height), yaw, pitch, size, hfov))
    return cams


def aimed_pitch(height: float, distance: float) -> float:
    """The tilt (degrees down) of a camera ``height`` m up that looks at the floor
    ``distance`` m away."""
    return math.degrees(math.atan2(height, distance))
