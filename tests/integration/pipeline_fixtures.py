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
    """check_frame without replicas (a replicated stage cannot be restarted yet)."""
    return check_frame(frame)
