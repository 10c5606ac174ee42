"""The people-flow pipeline as a conveyor graph, built only on conveyor's public API.

    Frames[cam] (one source per camera) ──cv.Frame──▶ detect (batch, gpu) ──Detections──▶
        Track (one per camera) ──CameraPeople──▶ Associate (gathers every camera's instant)
        ──FloorPeople──▶ results

- ``Frames`` decodes one camera (a file or RTSP, ``peopleflow.sources``) and writes each
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
from peopleflow.config import DETECTOR_INPUT, Camera, StoreConfig
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
    realtime: bool = False  # file cameras are read at camera pace, late frames dropped
    # each camera's detector input (height, width), when the store does not set one for all
    detector_inputs: tuple[tuple[str, tuple[int, int]], ...] = ()
    report_every: float = 15.0


@dataclass(frozen=True)
class DetectorChoice:
    """Which detector, with what input size and score threshold (the store's [detector])."""

    kind: str = "auto"
    options: tuple[tuple[str, object], ...] = field(default=())

    inputs: tuple[tuple[str, tuple[int, int]], ...] = ()  # per camera (height, width)

    @classmethod
    def of(cls, settings: RunSettings) -> DetectorChoice:
        if settings.detector == "hog":
            return cls("hog")
        chosen = settings.store.detector
        options = (
            ("input_size", chosen.input or DETECTOR_INPUT),
            ("score", chosen.score),
            ("threads", 1),
            ("precision", chosen.precision),
        )
        inputs = () if chosen.input else settings.detector_inputs
        return cls(settings.detector, options, inputs)

    def input_of(self, camera: str) -> tuple[int, int]:
        """The detector input (height, width) for the camera's frames."""
        own = dict(self.inputs).get(camera)
        return own or dict(self.options).get("input_size", DETECTOR_INPUT)  # type: ignore[return-value]


@functools.lru_cache(maxsize=4)
def detector_for(choice: DetectorChoice) -> Detector:
    """One model per process and choice: loading it costs seconds, a call milliseconds."""
    return make_detector(choice.kind, **dict(choice.options))


# How long an instant waits for its last camera before it goes without it: below live
# cameras, a camera that stalls must not hold the others' instants (2 s); below files, which
# are read in step and lose nothing, the instant waits for every camera however busy the
# pipelines are (with 2 s, a busy run's instants went out with 1-5 of 6 cameras and the rest
# came in later as instants of their own), up to this much for a file that ended early.
LIVE_GATHER_WAIT = 2.0
FILE_GATHER_WAIT = 30.0


def graph_for(settings: RunSettings) -> cv.Graph:
    """The pipeline of one store's run."""
    live = settings.realtime or any(c.is_stream for c in settings.store.cameras)
    wait = LIVE_GATHER_WAIT if live else FILE_GATHER_WAIT
    return cv.Graph(
        [
            *camera_sources(settings),
            cv.bind(detect, detector=DetectorChoice.of(settings)),
            cv.bind(Track, settings.store),
            cv.bind(Associate, settings).with_options(max_wait=wait),
        ]
    )


@dataclass
class CameraFrame(cv.Frame):
    """A frame, with its camera's health so far (counts since its reader started)."""

    behind: int = 0  # frames a live stream dropped to keep up with real time
    reconnects: int = 0
    captured: float = 0.0  # wall clock when it was read (the database's lag is measured from it)
    # The camera's configuration and detector input (height, width): a camera added while the
    # service runs is not in the store the tasks were given (``peopleflow.serve``).
    config: Camera | None = None
    detector_input: tuple[int, int] | None = None


@dataclass
class Detections:
    camera: str
    index: int
    ts: float
    size: tuple[int, int]  # frame width, height
    boxes: np.ndarray  # (n, 4) float32 pixels
    scores: np.ndarray  # (n,)
    looks: np.ndarray  # (n, LOOK_SIZE) colour histograms of torso and legs (track.appearance)
    health: tuple[int, int] = (0, 0)  # the camera's (behind, reconnects)
    captured: float = 0.0  # wall clock when the frame was read
    config: Camera | None = None  # the camera's, from its frame (None: the store's)


@dataclass
class CameraPeople:
    camera: str
    index: int
    ts: float
    ids: np.ndarray  # camera track ids
    floor: np.ndarray  # (n, 2) metres
    heights: np.ndarray  # box heights, pixels
    looks: np.ndarray
    spread: np.ndarray  # (n, 2, 2) m^2: how far off each floor place may be
    health: tuple[int, int] = (0, 0)
    captured: float = 0.0


@dataclass
class FloorPeople:
    index: int
    ts: float
    ids: np.ndarray  # (n,) store-wide identities
    xy: np.ndarray  # (n, 2) metres
    cameras: int  # how many cameras reported this instant
    looks: np.ndarray  # (n, LOOK_SIZE) appearance: the report links identities again with it
    camera_names: list[str]  # which cameras reported it (their health: frames, gaps)
    health: dict[str, tuple[int, int]]  # camera -> (frames dropped behind, reconnects) so far
    captured: float = 0.0  # wall clock when its first frame was read


# Cost hints (seconds per item on one CPU core, measured on the synthetic store) let the
# planner split detection over processes without a measuring run first.
@cv.source(cost=0.003)
class Frames:
    """One camera's sampled frames; bound once per camera (``Frames[cam1]``, ...), so that
    conveyor spreads the cameras' decoding over its processes like any task.

    File cameras keep in step (conveyor's ``keep_in_step``): none reads more than a few frames
    ahead of the slowest, wherever each runs, so every camera's frames of one instant meet at
    ``Associate``. Live cameras pace themselves, and never wait for one that is away. A camera
    that cannot be read any more is reported and ends; the others go on.

    After a restart of its pipeline (conveyor's ``resume(n)``: the first n items are done), a
    file camera seeks past what was done (nothing is decoded again) and a live stream goes on
    at now: a restart loses only the seconds it was down, which the live service records as a
    gap. Without ``resume``, conveyor would pull the n items again from a fresh reader, at the
    camera's pace for a live stream."""

    def __init__(self, settings: RunSettings, camera: str) -> None:
        s = settings
        c = next(c for c in s.store.cameras if c.name == camera)
        self.config = c
        self.detector_input = DetectorChoice.of(s).input_of(camera)
        self.reader = CameraReader(
            c.name,
            c.source,
            c.fps,
            max_seconds=s.seconds,
            start_seconds=s.start_seconds,
            clock_origin=s.clock_origin,
            retries=s.retries,
            realtime=s.realtime,
        )
        # Conveyor reads a camera that keeps real time in a thread (it may wait on its camera),
        # and holds no other camera back for it, nor it for them.
        self.live = self.reader.live or self.reader.realtime
        self.keep_in_step = not self.live

    @property
    def dropped(self) -> int:
        """Frames a live (or realtime) camera let go because the pipeline was behind
        (conveyor's statistics show them; the database has them per camera)."""
        return self.reader.stats.behind

    def resume(self, done: int) -> None:
        """Start after the first ``done`` frames (a file seeks; a stream goes on at now)."""
        if not self.reader.live and done > 0:
            self.reader.start_seconds += done / self.reader.fps

    def __iter__(self) -> Iterator[CameraFrame]:
        # interleave: a live stream is read by a thread of its own that keeps only the newest
        # frames; a camera that fails is logged and ends
        for reader, index, seconds, pixels in interleave([self.reader]):
            frame = CameraFrame.write(reader.name, pixels, index, ts=seconds)
            frame.behind, frame.reconnects = reader.stats.behind, reader.stats.reconnects
            frame.captured = time.time()
            frame.config, frame.detector_input = self.config, self.detector_input
            yield frame


def camera_sources(settings: RunSettings) -> list[cv.TaskSpec]:
    """One ``Frames`` per camera that opened, named ``Frames[camera]``, weighed by what its
    frames cost to detect in (its detector input's pixels): the detector's replicas, each
    taking whole cameras, then get an even share of the work (with 384x640 and 288x512
    cameras counted alike, one replica took all the large ones: 1.53x the inline backend)."""
    return [
        camera_source(settings, c.name, f"Frames[{c.name}]")
        for c in settings.store.cameras
        if c.name not in settings.skip
    ]


def camera_source(settings: RunSettings, camera: str, name: str) -> cv.TaskSpec:
    """``camera``'s ``Frames``, named ``name`` (a camera added again while the service runs
    takes a name of its own), weighed by its detection work (``camera_weight``)."""
    weight = camera_weight(DetectorChoice.of(settings), camera)
    return cv.bind(Frames, settings, camera).named(name).with_options(weight=weight)


def camera_weight(choice: DetectorChoice, camera: str) -> float:
    """A camera's detection work against a 288x512 input's (the detector's cost goes with the
    input's pixels: 68-71 ms a frame at 288x512, 111-119 at 384x640, batches of 4 on one core
    of this project's 2-core VM, 2026-12-06)."""
    if choice.kind == "hog":
        return 1.0
    h, w = choice.input_of(camera)
    return round(h * w / (288 * 512), 3)


@cv.task(batch=4, max_wait=0.05, resource="gpu", replicas="auto", cost=0.18)
def detect(batch: list[cv.Frame], *, detector: DetectorChoice) -> list[Detections]:
    """People in a batch of frames (any cameras), with their colours."""
    images = [f.pixels for f in batch]
    inputs = [getattr(f, "detector_input", None) or detector.input_of(f.camera) for f in batch]
    found = detector_for(detector)(images, inputs)
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
            getattr(f, "config", None),
        )
        for f, img, (boxes, scores) in zip(batch, images, found, strict=True)
    ]


@cv.task(key="camera", cost=0.002)
class Track:
    """One camera's ByteTrack, and its people placed on the floor plan."""

    def __init__(self, store: StoreConfig) -> None:
        self.store = store
        self.tracker: CameraTracker | None = None
        self.config: Camera | None = None  # the camera's configuration it tracks with

    def __call__(self, d: Detections) -> CameraPeople:
        if self.tracker is None or (d.config is not None and not d.config.same_as(self.config)):
            # First frame, or the camera came back with another calibration (a store file
            # changed while the service runs): its tracks start again.
            self.config = d.config or next(c for c in self.store.cameras if c.name == d.camera)
            self.tracker = camera_tracker(self.store, self.config, d.size)
        p = self.tracker.update(d.boxes, d.scores, d.looks)
        return CameraPeople(
            d.camera,
            d.index,
            d.ts,
            p.ids,
            p.floor,
            p.heights,
            p.looks,
            p.spreads(),
            (d.health[0], d.health[1]),
            d.captured,
        )


@cv.task(gather=cv.Gather(by="index", member="camera"), max_wait=LIVE_GATHER_WAIT, cost=0.002)
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
        placed = [Placed(g.camera, g.ids, g.floor, g.heights, g.looks, g.spread) for g in group]
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


def camera_tracker(cfg: StoreConfig, cam: Camera, size: tuple[int, int]) -> CameraTracker:
    """The tracker of a camera of the store, for frames of ``size`` (width, height)."""
    return CameraTracker(cam.name, cam.homography, size, cam.fps, (cfg.plan.width, cfg.plan.height))


def associate(floor: FloorTracker, index: int, t: float, placed: list[Placed]) -> FloorPeople:
    """Every camera's people at one instant -> identities on the floor. Cameras go in name
    order, not arrival order: the same frames give the same identities on any backend."""
    seen = floor.update(t, sorted(placed, key=lambda p: p.camera))
    ids = np.array([s[0] for s in seen], np.int64)
    xy = np.array([s[1:] for s in seen], np.float64).reshape(-1, 2)
    names = sorted(p.camera for p in placed)
    return FloorPeople(index, t, ids, xy, len(placed), floor.last_looks, names, {})
