"""Calibration by clicking (the store's page, ``/calibrate``): what the page asks of the server.

- ``fit``: the homography of the pairs clicked so far (pixel -> floor metres), each pair's
  reprojection error, and the floor's 1 m grid drawn back into the image, so that a wrong
  click shows at once as a bent grid.
- ``save``: the pairs go into the store's TOML file through the same validated loader as a
  hand-written file (``peopleflow.config``), keeping the file's comments and layout
  (tomlkit), written whole or not at all. The service reads it when it next starts.
- ``snapshot``: one current frame of a camera, as JPEG, read for the request and not kept.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from peopleflow.config import Camera, ConfigError, StoreConfig, parse_config
from peopleflow.geometry import Homography, HomographyError
from peopleflow.sources import CameraReader, SourceError

GRID_STEP = 1.0  # metres between the grid lines drawn back into the image


def fit(
    pairs: list[list[float]], plan_size: tuple[float, float], frame: tuple[int, int]
) -> dict[str, Any]:
    """The fit of ``pairs`` ([u, v, x, y] rows) for a frame of ``frame`` (width, height) over a
    floor of ``plan_size`` (width, height) metres. Raises ``HomographyError`` saying why not."""
    rows = np.asarray(pairs, np.float64).reshape(-1, 4)
    h = Homography.fit(rows[:, :2], rows[:, 2:])
    errors = h.errors(rows[:, :2], rows[:, 2:])
    return {
        "matrix": h.matrix.round(9).tolist(),
        "errors_m": [round(float(e), 3) for e in errors],
        "grid": _grid(h, rows, plan_size, frame),
    }


def _grid(
    h: Homography, rows: np.ndarray, plan_size: tuple[float, float], frame: tuple[int, int]
) -> list[list[list[float]]]:
    """The floor's grid lines as image polylines, only where they are in front of the camera
    and near the frame."""
    width, height = plan_size
    known = np.c_[rows[:, 2:], np.ones(len(rows))] @ h.inverse.T
    front = np.sign(np.median(known[:, 2])) or 1.0
    lines = []
    xs, ys = np.arange(0, width + 1e-9, GRID_STEP), np.arange(0, height + 1e-9, GRID_STEP)
    for fixed, along, vertical in ((xs, ys, True), (ys, xs, False)):
        for f in fixed:
            t = np.linspace(float(along.min()), float(along.max()), 40)
            pts = np.c_[np.full_like(t, f), t] if vertical else np.c_[t, np.full_like(t, f)]
            proj = np.c_[pts, np.ones(len(pts))] @ h.inverse.T
            ahead = proj[:, 2] * front > 1e-9
            img = proj[:, :2] / proj[:, 2:3]
            near = ahead & (np.abs(img[:, 0]) < 3 * frame[0]) & (np.abs(img[:, 1]) < 3 * frame[1])
            if near.sum() >= 2:
                lines.append(img[near].round(1).tolist())
    return lines


def save(config: Path, camera: str, pairs: list[list[float]]) -> StoreConfig:
    """Write ``pairs`` as ``camera``'s calibration into the store file, validated first."""
    import tomlkit

    text = config.read_text()
    doc = tomlkit.parse(text)
    cameras = doc.get("cameras")
    found = [c for c in (cameras or []) if c.get("name") == camera]
    if not found:
        raise ConfigError(f"{config}: no camera named {camera!r}")
    rows = tomlkit.array()
    rows.multiline(True)
    for u, v, x, y in np.asarray(pairs, np.float64).reshape(-1, 4).round(3).tolist():
        rows.append([u, v, x, y])
    found[0]["calibration"] = rows
    return _write(config, tomlkit.dumps(doc))


def save_zones(config: Path, zones: list[dict[str, Any]]) -> StoreConfig:
    """Write ``zones`` ({name, polygon: [[x, y], ...], door}) as the store's zones, validated
    first (names unique, polygons on the floor plan)."""
    import tomlkit

    doc = tomlkit.parse(config.read_text())
    tables = tomlkit.aot()
    for zone in zones:
        table = tomlkit.table()
        table["name"] = str(zone["name"])
        points = tomlkit.array()
        for x, y in np.asarray(zone["polygon"], np.float64).reshape(-1, 2).round(3).tolist():
            points.append([x, y])
        table["polygon"] = points
        if zone.get("door"):
            table["door"] = True
        tables.append(table)
    doc["zones"] = tables
    return _write(config, tomlkit.dumps(doc))


def _write(config: Path, new: str) -> StoreConfig:
    """Validate the new text as a store file, then replace the file with it (atomically)."""
    checked = parse_config(
        tomllib.loads(new), config.parent, check_sources=False, origin=str(config)
    )
    fd, tmp = tempfile.mkstemp(dir=config.parent, prefix=".calibration-", suffix=".toml")
    with os.fdopen(fd, "w") as out:
        out.write(new)
    os.replace(tmp, config)  # whole or not at all
    return checked


def snapshot(cam: Camera) -> bytes:
    """One current frame of ``cam`` as JPEG (read now, kept nowhere)."""
    import cv2

    reader = CameraReader(cam.name, cam.source, cam.fps, retries=0, timeout=5.0)
    for _, _, frame in reader:
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if ok:
            return bytes(jpeg)
        break
    raise SourceError(f"camera {cam.name}: no frame to show")


__all__ = ["HomographyError", "fit", "save", "save_zones", "snapshot"]
