"""Graphs for the local-backend tests (module level: worker processes import them)."""

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import conveyor as cv


@dataclass
class Frame:
    camera: str
    index: int
    pixels: np.ndarray


@dataclass
class Stats:
    camera: str
    index: int
    mean: float
    running: float


@cv.source
def frames() -> Iterator[Frame]:
    rng = np.random.default_rng(7)
    for index in range(40):
        for camera in ("c0", "c1", "c2"):
            yield Frame(camera, index, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))


@cv.task(batch=4, max_wait=0.005, cost=0.002)
def measure(batch: list[Frame]) -> list[Stats]:
    return [Stats(f.camera, f.index, float(f.pixels.mean()), 0.0) for f in batch]


@cv.task(key="camera", cost=0.001)
class Smooth:
    def __init__(self) -> None:
        self.value: float | None = None

    def __call__(self, s: Stats) -> Stats:
        self.value = s.mean if self.value is None else 0.9 * self.value + 0.1 * s.mean
        return Stats(s.camera, s.index, s.mean, self.value)


@cv.task(cost=0.001)
def fails_at_17(s: Stats) -> Stats:
    if s.index == 17:
        raise RuntimeError("index 17 is cursed")
    return s


@cv.task(cost=0.001, on_error="fail")
def fails_run_at_17(s: Stats) -> Stats:
    if s.index == 17:
        raise RuntimeError("index 17 is cursed")
    return s


@cv.task(cost=0.001, on_error="fail")
def stops_on_error(s: Stats) -> Stats:
    return s


@cv.task(cost=0.001, on_error="retry")
def retries_on_error(s: Stats) -> Stats:
    return s


POISON = ("c1", 17)  # the item the poison tasks below cannot survive


@cv.task(cost=0.001)
def crashes_on_poison(s: Stats) -> Stats:
    if (s.camera, s.index) == POISON:
        os.kill(os.getpid(), 9)
    return s


@cv.task(cost=0.001, timeout=0.5)
def hangs_on_poison(s: Stats) -> Stats:
    while (s.camera, s.index) == POISON:
        pass
    return s


@cv.task(batch=4, max_wait=0.005, cost=0.002)
def measure_crashes_on_poison(batch: list[Frame]) -> list[Stats]:
    if any((f.camera, f.index) == POISON for f in batch):
        os._exit(7)
    return measure(batch)


@cv.task(cost=0.001, timeout=1.0)
def within_a_second(s: Stats) -> Stats:
    return s


@cv.task(key="camera", cost=0.001, checkpoint=False)
class SmoothForgetful(Smooth):
    """Smooth without checkpoints: a replacement starts afresh."""


@cv.task(key="camera", cost=0.001, checkpoint=cv.Checkpoint(items=5, seconds=10.0))
class SmoothExplicit:
    """Smooth with state() and restore(): only its running value is saved."""

    def __init__(self) -> None:
        self.value: float | None = None
        self.seen = 0

    def state(self) -> tuple[float | None, int]:
        return self.value, self.seen

    def restore(self, state: tuple[float | None, int]) -> None:
        self.value, self.seen = state

    def __call__(self, s: Stats) -> Stats:
        self.seen += 1
        self.value = s.mean if self.value is None else 0.9 * self.value + 0.1 * s.mean
        return Stats(s.camera, self.seen - 1, s.mean, self.value)


@cv.task(cost=0.001)
def dies_at_5(s: Stats) -> Stats:
    if s.index == 5:
        os._exit(3)
    return s


@dataclass
class Half:
    camera: str
    index: int
    value: float


@cv.task(wire={"s": "measure"})
def halve(s: Stats) -> Half:
    return Half(s.camera, s.index, s.mean / 2)


@cv.task(wire={"s": "measure"})
def combine(s: Stats, h: Half) -> Stats:
    return Stats(s.camera, s.index, s.mean + h.value, float(s.index))


@cv.source
def endless() -> Iterator[Frame]:
    index = 0
    while True:
        yield Frame("c0", index, np.zeros((8, 8, 3), np.uint8))
        index += 1


@cv.task
def announce(f: Frame) -> None:
    if f.index == 100:
        print("running", flush=True)


endless_graph = cv.Graph([endless, announce])


# -- replicas ----------------------------------------------------------------------------------


@dataclass
class Bright:
    camera: str
    index: int
    pixels: np.ndarray


@cv.task(replicas=2, cost=0.002)
def brighten(f: Frame) -> Bright | None:
    """Stateless, replicated, and drops some items (replicas then send skip markers)."""
    if f.index % 7 == 3:
        return None
    return Bright(f.camera, f.index, f.pixels // 2 + 10)


@cv.task(replicas=3, cost=0.002)
def brighten3(f: Frame) -> Bright | None:
    return brighten(f)


@cv.task(batch=4, max_wait=0.005, cost=0.002)
def measure_bright(batch: list[Bright]) -> list[Stats]:
    return [Stats(f.camera, f.index, float(f.pixels.mean()), 0.0) for f in batch]


@cv.task(replicas=2, key="camera", cost=0.001)
class SmoothReplicated(Smooth):
    """Stateful and keyed: each camera's items go to one replica, in order."""


# -- gathering across cameras ------------------------------------------------------------------


@dataclass
class Scene:
    index: int
    cameras: tuple[str, ...]
    total: float


@cv.task(gather=cv.Gather(by="index", member="camera"), max_wait=5.0)
def scene(stats: list[Stats]) -> Scene:
    return Scene(stats[0].index, tuple(sorted(s.camera for s in stats)), sum(s.mean for s in stats))


# -- frames in the run's frame store -----------------------------------------------------------

CAMERAS = [cv.CameraSpec(f"cam{i}", (60, 80, 3), slots=3) for i in range(3)]


def expected_fill(camera: str, index: int) -> int:
    return (index * 7 + int(camera[-1]) * 50) % 251


@cv.source
def store_frames() -> Iterator[cv.Frame]:
    """Writes each frame once into the run's store; only 3 slots per camera, so slots are
    reused many times over: a slot reused too early would show the wrong fill."""
    for index in range(30):
        for spec in CAMERAS:
            pixels = np.full(spec.shape, expected_fill(spec.name, index), np.uint8)
            yield cv.Frame.write(spec.name, pixels, index)


@dataclass
class Checked:
    camera: str
    index: int
    fill: int


@cv.task(replicas=2, cost=0.001)
def check_frame(frame: cv.Frame) -> Checked:
    pixels = frame.pixels  # a read-only view into shared memory
    assert not pixels.flags.writeable
    return Checked(frame.camera, frame.index, int(pixels[0, 0, 0]) + int(pixels.max()) * 1000)


@cv.task(replicas=1, cost=0.001)
def check_frame_once(frame: cv.Frame) -> Checked:
    """check_frame without replicas."""
    return check_frame(frame)


@cv.task(key="camera", cost=0.001)
class CountFrames:
    """Stateful over frames: it holds its inputs (and so their frame slots) until each
    checkpoint, with only 3 slots per camera; the source must not wait for slots forever."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, frame: cv.Frame) -> Checked:
        self.count += 1
        return Checked(frame.camera, self.count, int(frame.pixels[0, 0, 0]))


@dataclass
class Smoothed:
    camera: str
    index: int
    running: float


@cv.task(key="camera", cost=0.001, checkpoint=cv.Checkpoint(items=5, seconds=10.0))
class SmoothThenPass(Smooth):
    """Smooth with a consumer in its own pipeline (the consumer is what gets killed)."""


@cv.task(batch=8, max_wait=1.0, cost=0.001, wire={"batch": "SmoothThenPass"})
def after_smooth(batch: list[Stats]) -> list[Smoothed]:
    """Batches lag behind SmoothThenPass: checkpointed inputs are still uncommitted here."""
    return [Smoothed(s.camera, s.index, s.running) for s in batch]


@cv.source
def paced_frames() -> Iterator[Frame]:
    """The fixture's frames at about 600 a second: a run long enough to be watched."""
    import time

    for frame in frames():
        time.sleep(1 / 600)
        yield frame


@dataclass
class Seen:
    index: int
    pid: int  # the pipeline process that handled the item
    siblings: list[int]  # the driver's other child processes at that moment


@cv.source
def numbers() -> Iterator[Stats]:
    for index in range(60):
        yield Stats("c0", index, float(index), 0.0)


@cv.task(cost=0.001)
def where(s: Stats) -> Seen:
    import psutil

    here = os.getpid()
    others = [p.pid for p in psutil.Process(os.getppid()).children() if p.pid != here]
    return Seen(s.index, here, others)


@cv.source
class LiveCamera:
    """A live camera that is faster than the graph: it sends every third frame and counts the
    two it let go in ``dropped`` (what conveyor's statistics show)."""

    def __init__(self) -> None:
        self.dropped = 0

    def __iter__(self) -> Iterator[Stats]:
        for index in range(30):
            yield Stats("live", index, float(index), 0.0)
            self.dropped += 2
