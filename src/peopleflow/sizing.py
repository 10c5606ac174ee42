"""How big the detector's input must be for each camera, from how tall people appear in it.

The detector finds people best from about ``PERSON_PIXELS`` (75) pixels tall at its input: on
drawn 640x360 tuning stores, people 50-80 px tall in the frame are found 80% of the time at
384x640 (the frame's own size), 90% at 1.25x and 96% at 1.5x; at 2x every band falls
(docs/peopleflow.md). A camera's frames are scaled so that its smallest person is that tall
(shrunk where people are large, enlarged up to 1.5x where they are small), within the
``LARGEST`` input: the smallest person is a 1.7 m one at the far edge of the camera's floor
view, or one ``SMALLEST_SHOWN`` pixels tall if the camera shows people smaller than that (they
are too few pixels to be found at any input). A store's ``[detector] person_pixels`` trades
people found for speed (50: the cheaper rule before).

How tall a person stands at a floor point comes from the calibration alone: with square pixels
and the principal point at the frame's centre, the floor homography fixes the focal length and
the camera's pose, and a 1.7 m person is projected (``camera_matrix``). Where no focal length
fits, the homography's largest stretch at the point (the focal length over its depth) times
1.7 m stands in for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from peopleflow.config import PERSON_PIXELS, Camera, FloorPlan
from peopleflow.coverage import shows
from peopleflow.geometry import PERSON, camera_matrix, project

SMALLEST_SHOWN = 50.0  # pixels: people shown at least this tall must be found
# The largest input (pixels, height x width): past it a CPU spends more than 4x the default's
# 288x512 on a frame (315 ms against 80 on one thread, docs/peopleflow.md); a 1920x1080 frame is
# shrunk to no less than half, a 1280x720 one to three quarters.
LARGEST = 540 * 960  # (a 1080p frame at half size; rounded up to 544x960)
GRID = 0.25  # metres between the floor points looked at
STEP = 0.05  # metres: the finite difference of the homography's stretch


def person_heights(cam: Camera, size: tuple[int, int], plan: FloorPlan) -> np.ndarray:
    """How tall (pixels) a ``PERSON`` stands at each floor point of ``plan`` that ``cam``
    (frames of ``size``: width, height) shows; empty when it shows none."""
    xs = np.arange(GRID / 2, plan.width, GRID)
    ys = np.arange(GRID / 2, plan.height, GRID)
    floor = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    floor = floor[shows(cam, size, floor)]
    if not len(floor):
        return np.zeros(0)
    projection = camera_matrix(cam.homography.inverse, size)
    if projection is None:  # no focal length fits: the homography's stretch instead
        return PERSON * _stretch(cam.homography.inverse, floor)
    feet, _ = project(projection, np.c_[floor, np.zeros(len(floor))])
    heads, _ = project(projection, np.c_[floor, np.full(len(floor), PERSON)])
    return np.asarray(np.abs(feet[:, 1] - heads[:, 1]))


def _stretch(to_image: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Pixels per metre across the view at each floor point: the homography's largest
    stretch there (the focal length over the point's depth)."""

    def image(points: np.ndarray) -> np.ndarray:
        p = np.c_[points, np.ones(len(points))] @ to_image.T
        return np.asarray(p[:, :2] / p[:, 2:3])

    here = image(floor)
    du = (image(floor + [STEP, 0.0]) - here) / STEP
    dv = (image(floor + [0.0, STEP]) - here) / STEP
    return np.asarray(np.linalg.svd(np.stack([du, dv], axis=-1), compute_uv=False)[:, 0])


def input_for(
    size: tuple[int, int], smallest: float, at_input: float = PERSON_PIXELS
) -> tuple[int, int]:
    """The detector input (height, width; multiples of 32) for frames of ``size`` (width,
    height) whose smallest person to find is ``smallest`` pixels tall, made ``at_input``
    pixels tall (a frame is enlarged where its people are smaller than that)."""
    width, height = size
    scale = min(at_input / max(smallest, SMALLEST_SHOWN), math.sqrt(LARGEST / (width * height)))
    return up32(height * scale), up32(width * scale)


def detector_inputs(
    cameras: tuple[Camera, ...],
    sizes: Mapping[str, tuple[int, int]],
    plan: FloorPlan,
    at_input: float = PERSON_PIXELS,
) -> dict[str, tuple[int, int]]:
    """Each camera's detector input (height, width), for the cameras whose frame size (width,
    height) is known, its farthest person made ``at_input`` pixels tall."""
    out = {}
    for cam in cameras:
        if cam.name not in sizes:
            continue
        heights = person_heights(cam, sizes[cam.name], plan)
        smallest = float(heights.min()) if len(heights) else SMALLEST_SHOWN
        out[cam.name] = input_for(sizes[cam.name], smallest, at_input)
    return out


def up32(pixels: float) -> int:
    """``pixels`` rounded up to a multiple of 32 (a YOLO input side), at least 32."""
    return max(32, 32 * math.ceil(pixels / 32 - 1e-9))
