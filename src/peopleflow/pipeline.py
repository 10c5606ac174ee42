"""The people-flow pipeline as a conveyor graph, built only on conveyor's public API.

    Frames (source) ──cv.Frame──▶ detect (batch, gpu) ──Detections──▶ Track (one per camera)
        ──CameraPeople──▶ Associate (gathers every camera's instant) ──FloorPeople──▶ results

- ``Frames`` decodes every camera (files or RTSP, ``peopleflow.sources``) and writes each
  sampled frame once into conveyor's shared-memory frame store;
- ``detect`` runs the person detector on batches of frames from any cameras (on the GPU when
  there is one) and measures each person's colours;
- ``Track`` keeps one ByteTrack per camera and places people on the floor plan;
- ``Associate`` gives each person one identity over all cameras (``FloorTracker``).

Tasks are module-level (the workers import this module). What a run is about (the store
configuration, the detector, how many seconds to read) reaches the workers in the environment
variable ``PEOPLEFLOW_RUN`` (JSON), set by ``run_store`` before the workers start.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import conveyor as cv
from peopleflow.config import StoreConfig, load_config
from peopleflow.detect import Detector, make_detector
from peopleflow.sources import CameraReader, interleave
from peopleflow.track import REID_WINDOW, CameraTracker, FloorTracker, Placed, appearance

ENV = "PEOPLEFLOW_RUN"


@dataclass
class CameraFrame(cv.Frame):
    """A frame, with its camera's health so far (counts since its reader started)."""

    behind: int = 0  # frames a live stream dropped to keep up with real time
    reconnects: int = 0
    captured: float = 0.0  # wall clock when it was read (the database's lag is measured from it)


@dataclass
class Detections:
    camera: str
    index: int
    ts: float
    size: tuple[int, int]  # frame width, height
    boxes: np.ndarray  # (n, 4) float32 pixels
    scores: np.ndarray  # (n,)
    looks: np.ndarray  # (n, 128) colour histograms of torso and legs
    health: tuple[int, int] = (0, 0)  # the camera's (behind, reconnects)
    captured: float = 0.0  # wall clock when the frame was read


@dataclass
class CameraPeople:
    camera: str
    index: int
    ts: float
    ids: np.ndarray  # camera track ids
    floor: np.ndarray  # (n, 2) metres
    heights: np.ndarray  # box heights, pixels
    looks: np.ndarray
    health: tuple[int, int] = (0, 0)
    captured: float = 0.0


@dataclass
class FloorPeople:
    index: int
    ts: float
    ids: np.ndarray  # (n,) store-wide identities
    xy: np.ndarray  # (n, 2) metres
    cameras: int  # how many cameras reported this instant
    looks: np.ndarray  # (n, 128) appearance: the report links identities again with it
    camera_names: list[str]  # which cameras reported it (their health: frames, gaps)
    health: dict[str, tuple[int, int]]  # camera -> (frames dropped behind, reconnects) so far
    captured: float = 0.0  # wall clock when its first frame was read


@functools.cache
def settings() -> dict[str, Any]:
    raw = os.environ.get(ENV)
    if not raw:
        raise RuntimeError(f"{ENV} is not set: run the pipeline through peopleflow.run_store()")
    return dict(json.loads(raw))


@functools.cache
def store() -> StoreConfig:
    return load_config(settings()["config"], check_sources=False)


@functools.cache
def detector() -> Detector:
    kind = settings().get("detector", "auto")
    options: dict[str, object] = {}
    if kind != "hog":
        chosen = store().detector  # the store's [detector] table
        options = {"input_size": chosen.input, "score": chosen.score, "threads": 1}
    return make_detector(kind, **options)


# Cost hints (seconds per item on one CPU core, measured on the synthetic store) let the
# planner split detection over processes without a measuring run first.
@cv.source(cost=0.003)
class Frames:
    """Every camera's sampled frames, in time order; a broken camera is reported and skipped.

    After a restart of its pipeline (conveyor's ``resume(n)``: the first n items are done),
    file cameras seek past what was done (nothing is decoded again) and live streams go on at
    now: a restart loses only the seconds it was down, which the live service records as a
    gap. Without ``resume``, conveyor would pull the n items again from a fresh reader, at the
    camera's pace for a live stream."""

    def __init__(self) -> None:
        s = settings()
        self.readers = [
            CameraReader(
                c.name,
                c.source,
                c.fps,
                max_seconds=s.get("seconds"),
                start_seconds=float(s.get("start_seconds", 0.0)),
                clock_origin=s.get("clock_origin"),
                retries=s.get("retries", 5),
            )
            for c in store().cameras
            if c.name not in s.get("skip", ())
        ]
        self.first = 0  # the camera whose frame comes first (a resumed round goes on)

    def resume(self, done: int) -> None:
        """Start after the first ``done`` frames of the interleaved cameras."""
        files = [r for r in self.readers if not r.live]
        if not files or done <= 0:
            return
        skips, self.first = interleaved_counts([r.samples() for r in files], done)
        for reader, skip in zip(files, skips, strict=True):
            reader.start_seconds = reader.start_seconds + skip / reader.fps

    def __iter__(self) -> Iterator[CameraFrame]:
        for reader, index, seconds, pixels in interleave(self.readers, first=self.first):
            frame = CameraFrame.write(reader.name, pixels, index, ts=seconds)
            frame.behind, frame.reconnects = reader.stats.behind, reader.stats.reconnects
            frame.captured = time.time()
            yield frame


def interleaved_counts(lengths: list[int], done: int) -> tuple[list[int], int]:
    """How many frames of each camera the first ``done`` items of ``interleave`` hold (one
    frame of every camera that still has one, in turn), and which camera's turn is next: the
    items after a resume must be the same frames, in the same order, as before (conveyor
    numbers them, and drops repeats by number)."""
    taken = [0] * len(lengths)
    k = 0
    while done > 0 and any(t < n for t, n in zip(taken, lengths, strict=True)):
        if taken[k] < lengths[k]:
            taken[k] += 1
            done -= 1
        k = (k + 1) % len(lengths)
    return taken, k


@cv.task(batch=4, max_wait=0.05, resource="gpu", replicas="auto", cost=0.18)
def detect(batch: list[cv.Frame]) -> list[Detections]:
    """People in a batch of frames (any cameras), with their colours."""
    images = [f.pixels for f in batch]
    found = detector()(images)
    return [
        Detections(
            f.camera,
            f.index,
            f.ts,
            (img.shape[1], img.shape[0]),
            boxes,
            scores,
            appearance(img, boxes),
            (getattr(f, "behind", 0), getattr(f, "reconnects", 0)),
            float(getattr(f, "captured", 0.0)),
        )
        for f, img, (boxes, scores) in zip(batch, images, found, strict=True)
    ]


@cv.task(key="camera", cost=0.002)
class Track:
    """One camera's ByteTrack, and its people placed on the floor plan."""

    def __init__(self) -> None:
        self.tracker: CameraTracker | None = None

    def __call__(self, d: Detections) -> CameraPeople:
        if self.tracker is None:
            self.tracker = camera_tracker(store(), d.camera, d.size)
        p = self.tracker.update(d.boxes, d.scores, d.looks)
        return CameraPeople(
            d.camera,
            d.index,
            d.ts,
            p.ids,
            p.floor,
            p.heights,
            p.looks,
            (d.health[0], d.health[1]),
            d.captured,
        )


@cv.task(gather=cv.Gather(by="index", member="camera"), max_wait=2.0, cost=0.002)
class Associate:
    """Every camera's people at one instant -> one identity per person on the floor."""

    def __init__(self) -> None:
        self.floor = FloorTracker(reid_window=float(settings().get("reid_window", REID_WINDOW)))
        self.next_report = 0.0

    def __call__(self, group: list[CameraPeople]) -> FloorPeople:
        t = float(group[0].ts)
        placed = [Placed(g.camera, g.ids, g.floor, g.heights, g.looks) for g in group]
        people = associate(self.floor, group[0].index, t, placed)
        people.health = {g.camera: (int(g.health[0]), int(g.health[1])) for g in group}
        people.captured = min(float(g.captured) for g in group)
        if settings().get("progress") and t >= self.next_report:
            total = settings().get("total_seconds") or 0
            print(
                f"  video {t:5.0f} s{f' of {total:.0f}' if total else ''}: {len(people.ids):2d} "
                f"people in view, {self.floor.identities} identities so far",
                file=sys.stderr,
                flush=True,
            )
            self.next_report = t + float(settings().get("report_every", 15))
        return people


def camera_tracker(cfg: StoreConfig, camera: str, size: tuple[int, int]) -> CameraTracker:
    """The tracker of one of the store's cameras, for frames of ``size`` (width, height)."""
    cam = next(c for c in cfg.cameras if c.name == camera)
    return CameraTracker(cam.name, cam.homography, size, cam.fps, (cfg.plan.width, cfg.plan.height))


def associate(floor: FloorTracker, index: int, t: float, placed: list[Placed]) -> FloorPeople:
    """Every camera's people at one instant -> identities on the floor. Cameras go in name
    order, not arrival order: the same frames give the same identities on any backend."""
    seen = floor.update(t, sorted(placed, key=lambda p: p.camera))
    ids = np.array([s[0] for s in seen], np.int64)
    xy = np.array([s[1:] for s in seen], np.float64).reshape(-1, 2)
    names = sorted(p.camera for p in placed)
    return FloorPeople(index, t, ids, xy, len(placed), floor.last_looks, names, {})


graph = cv.Graph([Frames, detect, Track, Associate])
