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
configuration, the detector, how many seconds to read) is a ``RunSettings``, bound to the tasks
that need it by ``graph_for(settings)``: conveyor pickles it once and rebuilds it in every
worker, so two stores can run in one process and nothing is read from the environment.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

import conveyor as cv
from peopleflow.config import StoreConfig
from peopleflow.detect import Detector, make_detector
from peopleflow.sources import CameraReader, interleave
from peopleflow.track import REID_WINDOW, CameraTracker, FloorTracker, Placed, appearance


@dataclass(frozen=True)
class RunSettings:
    """What one run of a store is about: given to the tasks that need it, with ``.bind``."""

    store: StoreConfig
    detector: str = "auto"  # "auto", "yolo", "hog" (see peopleflow.detect)
    seconds: float | None = None  # read only the first seconds of each file camera
    progress: bool = False  # the Associate task prints a line every report_every s of video
    total_seconds: float = 0.0  # the video's length, for the progress lines
    skip: tuple[str, ...] = ()  # cameras that did not open
    reid_window: float = REID_WINDOW
    start_seconds: float = 0.0  # file cameras begin here (a resumed service)
    clock_origin: float | None = None  # live cameras time their frames from this epoch time
    retries: int | None = 5  # reconnections in a row before a live camera is given up
    report_every: float = 15.0


@dataclass(frozen=True)
class DetectorChoice:
    """Which detector, with what input size and score threshold (the store's [detector])."""

    kind: str = "auto"
    options: tuple[tuple[str, object], ...] = field(default=())

    @classmethod
    def of(cls, settings: RunSettings) -> DetectorChoice:
        if settings.detector == "hog":
            return cls("hog")
        chosen = settings.store.detector
        options = (("input_size", chosen.input), ("score", chosen.score), ("threads", 1))
        return cls(settings.detector, options)


@functools.lru_cache(maxsize=4)
def detector_for(choice: DetectorChoice) -> Detector:
    """One model per process and choice: loading it costs seconds, a call milliseconds."""
    return make_detector(choice.kind, **dict(choice.options))


def graph_for(settings: RunSettings) -> cv.Graph:
    """The pipeline of one store's run."""
    return cv.Graph(
        [
            cv.bind(Frames, settings),
            cv.bind(detect, detector=DetectorChoice.of(settings)),
            cv.bind(Track, settings.store),
            cv.bind(Associate, settings),
        ]
    )


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

    def __init__(self, settings: RunSettings) -> None:
        s = settings
        self.readers = [
            CameraReader(
                c.name,
                c.source,
                c.fps,
                max_seconds=s.seconds,
                start_seconds=s.start_seconds,
                clock_origin=s.clock_origin,
                retries=s.retries,
            )
            for c in s.store.cameras
            if c.name not in s.skip
        ]
        self.first = 0  # the camera whose frame comes first (a resumed round goes on)

    @property
    def dropped(self) -> int:
        """Frames live cameras let go because the pipeline was behind (conveyor's statistics
        show them; the database has them per camera)."""
        return sum(r.stats.behind for r in self.readers)

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
def detect(batch: list[cv.Frame], *, detector: DetectorChoice) -> list[Detections]:
    """People in a batch of frames (any cameras), with their colours."""
    images = [f.pixels for f in batch]
    found = detector_for(detector)(images)
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

    def __init__(self, store: StoreConfig) -> None:
        self.store = store
        self.tracker: CameraTracker | None = None

    def __call__(self, d: Detections) -> CameraPeople:
        if self.tracker is None:
            self.tracker = camera_tracker(self.store, d.camera, d.size)
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

    def __init__(self, settings: RunSettings) -> None:
        self.progress = settings.progress
        self.total = settings.total_seconds
        self.every = settings.report_every
        self.floor = FloorTracker(reid_window=settings.reid_window)
        self.next_report = 0.0

    def __call__(self, group: list[CameraPeople]) -> FloorPeople:
        t = float(group[0].ts)
        placed = [Placed(g.camera, g.ids, g.floor, g.heights, g.looks) for g in group]
        people = associate(self.floor, group[0].index, t, placed)
        people.health = {g.camera: (int(g.health[0]), int(g.health[1])) for g in group}
        people.captured = min(float(g.captured) for g in group)
        if self.progress and t >= self.next_report:
            total = self.total
            print(
                f"  video {t:5.0f} s{f' of {total:.0f}' if total else ''}: {len(people.ids):2d} "
                f"people in view, {self.floor.identities} identities so far",
                file=sys.stderr,
                flush=True,
            )
            self.next_report = t + self.every
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
