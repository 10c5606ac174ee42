"""The store's configuration: a TOML file, validated with errors that say where and what.

    [store]
    name = "demo store"
    floor = { width = 20.0, height = 12.0 }      # metres; the floor plan's extent
    floor_image = "floor.png"                    # optional: drawn under the maps
    identities = "relinked"                      # the report's: "relinked" or "live" (default:
                                                 # relinked, live for a single camera)
    min_visit = 5.0                              # seconds in a zone that make a visit (5)

    [detector]                                   # optional: the YOLO detector's settings
    input = [288, 512]                           # height, width: multiples of 32, for every
                                                 # camera (default: each camera's own, from
                                                 # how small people appear in it)
    score = 0.2                                  # lowest confidence kept (the default)
    person_pixels = 75                           # how tall the farthest person is made at
                                                 # each camera's own input (75; 50: faster,
                                                 # fewer people found)
    precision = "float32"                        # or "int8": 1.7-2.5x the speed on a
                                                 # CPU, the same recall (peopleflow.quantize)

    [[zones]]
    name = "entrance"
    polygon = [[0, 0], [3, 0], [3, 4], [0, 4]]   # floor-plan metres
    door = true                                  # people come in and leave here

    [[cameras]]
    name = "cam1"
    source = "videos/cam1.mp4"                   # a file, or rtsp://...
    fps = 10                                     # frames per second to sample
    size = [1920, 1080]                          # optional: width, height (live cameras)
    # four or more pairs: pixel (u, v) -> floor point (x, y)
    calibration = [[102, 540, 1.0, 2.0], [1800, 560, 9.0, 2.0],
                   [1500, 300, 8.0, 8.0], [300, 310, 2.0, 8.0]]

Relative paths are relative to the file. Every error names the field (``cameras[2].calibration``)
and says what was expected and what was found.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from peopleflow.geometry import Homography, HomographyError

log = logging.getLogger("peopleflow")

IDENTITIES = ("relinked", "live")  # who the report says was who: see peopleflow.relink
# A visit is a stay of at least this long: long enough to stop and look. Walking across a 2 m
# aisle takes 1.5-2.5 s (the commonest stay of all); a door counts however short the stay.
MIN_VISIT = 5.0
# The detector's defaults, chosen on generated stores (docs/peopleflow.md, "Accuracy"): the
# input when a camera's own cannot be worked out (peopleflow.sizing chooses 288x512 for the
# default store's 640x360 cameras); a low score keeps the faint ones for ByteTrack's second
# association, and the report drops identities seen too seldom.
DETECTOR_INPUT = (288, 512)
# A calibration pair whose image point maps further than this from its floor point (metres) is
# reported: one point mistyped bends the whole fit.
REPROJECTION_WARN = 0.5
DETECTOR_SCORE = 0.2
# How tall (pixels at the detector's input) each camera's farthest person is made, which sets
# each camera's input (peopleflow.sizing): the model finds people best at 75 px and up, more
# than at the 50 px that is cheaper (docs/peopleflow.md, "Each camera's detector input").
PERSON_PIXELS = 75.0
# The detector model's number types: float32 (the default), or int8 on a CPU
# (``peopleflow.quantize``: 1.7-2.5x faster, the same recall)
PRECISIONS = ("float32", "int8")


class ConfigError(ValueError):
    """The store configuration is wrong; the message names the field and the fix."""


@dataclass(frozen=True)
class Zone:
    name: str
    polygon: np.ndarray  # (n, 2) floor metres
    door: bool = False  # people come in and leave here (the report's identities use it)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Which of ``points`` (n, 2) lie inside the polygon (even-odd rule)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        x, y = pts[:, 0:1], pts[:, 1:2]
        px, py = self.polygon[:, 0], self.polygon[:, 1]
        qx, qy = np.roll(px, -1), np.roll(py, -1)
        crosses = (py > y) != (qy > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = (qx - px) * (y - py) / (qy - py) + px
        return np.asarray(np.sum(crosses & (x < at), axis=1) % 2 == 1)


@dataclass(frozen=True)
class Camera:
    name: str
    source: str  # a file path (resolved) or a stream URL
    fps: float
    calibration: np.ndarray  # (n, 4): u, v, x, y
    homography: Homography = field(compare=False, repr=False)
    # (width, height) of its frames, when declared: a live camera unreachable at start-up is
    # then kept in the run and retried until it comes (its frame size cannot be probed)
    size: tuple[int, int] | None = None

    @property
    def is_stream(self) -> bool:
        return "://" in self.source

    def same_as(self, other: Camera | None) -> bool:
        """The same camera set up the same way (its calibration compared by value)."""
        return (
            other is not None
            and (self.name, self.source, self.fps, self.size)
            == (other.name, other.source, other.fps, other.size)
            and np.array_equal(self.calibration, other.calibration)
        )


@dataclass(frozen=True)
class FloorPlan:
    """The floor in metres, x to the right and y up, with its zones."""

    width: float
    height: float
    zones: tuple[Zone, ...]

    @property
    def doors(self) -> tuple[Zone, ...]:
        return tuple(z for z in self.zones if z.door)

    @property
    def zone_names(self) -> list[str]:
        return [z.name for z in self.zones]

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON values (the results database keeps it, to draw reports)."""
        return {
            "width": self.width,
            "height": self.height,
            "zones": [
                {"name": z.name, "polygon": z.polygon.tolist(), "door": z.door} for z in self.zones
            ],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FloorPlan:
        zones = tuple(
            Zone(z["name"], np.asarray(z["polygon"], np.float64), bool(z["door"]))
            for z in raw["zones"]
        )
        return cls(float(raw["width"]), float(raw["height"]), zones)

    def zone_of(self, points: np.ndarray) -> np.ndarray:
        """The index of the zone each point is in (the first that contains it), or -1."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        out = np.full(len(pts), -1)
        for i, zone in reversed(list(enumerate(self.zones))):
            out[zone.contains(pts)] = i
        return out


@dataclass(frozen=True)
class DetectorSettings:
    # (height, width) every camera's frames are letterboxed into; None: each camera's own,
    # from its resolution and how small people appear in it (peopleflow.sizing)
    input: tuple[int, int] | None = None
    score: float = DETECTOR_SCORE  # the lowest confidence kept
    person_pixels: float = PERSON_PIXELS  # the farthest person's height at the input
    precision: str = "float32"  # or "int8": the model in 8-bit integers (on a CPU)


@dataclass(frozen=True)
class StoreConfig:
    name: str
    plan: FloorPlan
    cameras: tuple[Camera, ...]
    floor_image: Path | None = None
    identities: str = "relinked"  # the report's: decided again over the run, or the live ones
    min_visit: float = MIN_VISIT  # seconds in a zone that make a visit
    detector: DetectorSettings = DetectorSettings()


def load_config(path: str | Path, check_sources: bool = True) -> StoreConfig:
    """Read and validate a store configuration file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"store configuration {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, path.parent, check_sources=check_sources, origin=str(path))


def parse_config(
    raw: dict[str, Any], base: Path, check_sources: bool = True, origin: str = "config"
) -> StoreConfig:
    store = _table(raw, "store", origin)
    name = _str(store, "name", f"{origin}: store", default="store")
    floor = _table(store, "floor", f"{origin}: store")
    width = _positive(floor, "width", f"{origin}: store.floor")
    height = _positive(floor, "height", f"{origin}: store.floor")
    image = store.get("floor_image")
    floor_image = None
    if image is not None:
        floor_image = (base / _str(store, "floor_image", f"{origin}: store")).resolve()
        if check_sources and not floor_image.is_file():
            raise ConfigError(f"{origin}: store.floor_image: no file {floor_image}")
    # Relinking over the run tells look-alikes apart by where overlapping cameras place them; a
    # single camera has no second view, and relinked, successive look-alikes merge (the vtest
    # clip's walkers; a generated one-camera store: 14 visitors of 30, live 20).
    cameras_given = raw.get("cameras")
    single = isinstance(cameras_given, list) and len(cameras_given) == 1
    identities = _str(
        store, "identities", f"{origin}: store", default="live" if single else "relinked"
    )
    if identities not in IDENTITIES:
        raise ConfigError(
            f"{origin}: store.identities: expected one of {', '.join(IDENTITIES)}, got "
            f"{identities!r}"
        )
    min_visit = _positive(store, "min_visit", f"{origin}: store", default=MIN_VISIT)
    zones = tuple(
        _zone(z, f"{origin}: zones[{i}]", width, height)
        for i, z in enumerate(_list(raw, "zones", origin))
    )
    _unique([z.name for z in zones], f"{origin}: zones")
    cameras = tuple(
        _camera(c, f"{origin}: cameras[{i}]", base, check_sources)
        for i, c in enumerate(_list(raw, "cameras", origin))
    )
    _unique([c.name for c in cameras], f"{origin}: cameras")
    detector = _detector(raw.get("detector", {}), f"{origin}: detector")
    return StoreConfig(
        name,
        FloorPlan(width, height, zones),
        cameras,
        floor_image,
        identities,
        min_visit,
        detector,
    )


def _detector(raw: Any, where: str) -> DetectorSettings:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a [detector] table, got {raw!r}")
    unknown = sorted(set(raw) - {"input", "score", "person_pixels", "precision"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown keys {unknown} (expected input, score, person_pixels, precision)"
        )
    size = raw.get("input")
    if size is not None and (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
        or not all(32 <= v <= 2048 and v % 32 == 0 for v in size)
    ):
        raise ConfigError(
            f"{where}.input: expected [height, width], multiples of 32 from 32 to 2048, "
            f"got {size!r}"
        )
    score = raw.get("score", DETECTOR_SCORE)
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 < score < 1:
        raise ConfigError(f"{where}.score: expected a number between 0 and 1, got {score!r}")
    pixels = raw.get("person_pixels", PERSON_PIXELS)
    if isinstance(pixels, bool) or not isinstance(pixels, (int, float)) or not 20 <= pixels <= 200:
        raise ConfigError(
            f"{where}.person_pixels: expected a number of pixels from 20 to 200, got {pixels!r}"
        )
    precision = raw.get("precision", PRECISIONS[0])
    if precision not in PRECISIONS:
        raise ConfigError(f"{where}.precision: expected one of {PRECISIONS}, got {precision!r}")
    return DetectorSettings(
        None if size is None else (size[0], size[1]), float(score), float(pixels), precision
    )


def _zone(raw: Any, where: str, width: float, height: float) -> Zone:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table with name and polygon, got {raw!r}")
    name = _str(raw, "name", where)
    poly = _array(raw, "polygon", where, columns=2)
    if len(poly) < 3:
        raise ConfigError(f"{where}.polygon: expected 3 or more [x, y] points, got {len(poly)}")
    outside = (poly[:, 0] < 0) | (poly[:, 0] > width) | (poly[:, 1] < 0) | (poly[:, 1] > height)
    if outside.any():
        raise ConfigError(
            f"{where}.polygon: point {poly[outside][0].tolist()} is outside the floor plan "
            f"(0..{width} x 0..{height} m)"
        )
    door = raw.get("door", False)
    if not isinstance(door, bool):
        raise ConfigError(f"{where}.door: expected true or false, got {door!r}")
    return Zone(name, poly, door)


def _camera(raw: Any, where: str, base: Path, check_sources: bool) -> Camera:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table with name, source, fps, calibration")
    name = _str(raw, "name", where)
    source = _str(raw, "source", where)
    if "://" not in source:
        resolved = (base / source).resolve()
        if check_sources and not resolved.is_file():
            raise ConfigError(f"{where}.source: no video file {resolved}")
        source = str(resolved)
    fps = _positive(raw, "fps", where)
    calib = _array(raw, "calibration", where, columns=4)
    try:
        homography = Homography.fit(calib[:, :2], calib[:, 2:])
    except HomographyError as exc:
        raise ConfigError(f"{where}.calibration: {exc}") from None
    errors = homography.errors(calib[:, :2], calib[:, 2:])
    for k in np.flatnonzero(errors > REPROJECTION_WARN):
        log.warning(
            "%s.calibration[%d] %s: maps %.2f m from its floor point (over %.1f m: a pixel or "
            "a floor point mistyped, or the floor not flat there)",
            where,
            k,
            calib[k].tolist(),
            errors[k],
            REPROJECTION_WARN,
        )
    size = raw.get("size")
    if size is not None and (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ConfigError(f"{where}.size: expected [width, height] in pixels, got {size!r}")
    return Camera(name, source, fps, calib, homography, (size[0], size[1]) if size else None)


def _table(raw: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a [{key}] table, got {value!r}")
    return value


def _list(raw: dict[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected one or more [[{key}]] entries, got {value!r}")
    return value


def _str(raw: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return value


def _positive(raw: dict[str, Any], key: str, where: str, default: float | None = None) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{where}.{key}: expected a positive number, got {value!r}")
    return float(value)


def _array(raw: dict[str, Any], key: str, where: str, columns: int) -> np.ndarray:
    value = raw.get(key)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.ndim != 2 or arr.shape[1] != columns or not np.all(np.isfinite(arr)):
        row = "[x, y]" if columns == 2 else "[u, v, x, y] (pixel -> floor metres)"
        raise ConfigError(f"{where}.{key}: expected a list of {row} rows, got {value!r}")
    return arr


def _unique(names: list[str], where: str) -> None:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise ConfigError(f"{where}: names must be unique, {sorted(seen)} appear twice")
