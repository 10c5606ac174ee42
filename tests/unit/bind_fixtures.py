"""Tasks and sources that take arguments (module level: worker processes import them)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import conveyor as cv


@dataclass
class Reading:
    sensor: str
    index: int
    value: float


@dataclass
class Value:
    sensor: str
    index: int
    value: float


@dataclass
class Scaled:
    sensor: str
    index: int
    value: float
    seen: int  # items this instance saw before this one


@cv.source
class Sensors:
    """``count`` readings from each of ``names``."""

    def __init__(self, names: list[str], count: int, start: float = 0.0) -> None:
        self.names, self.count, self.start = names, count, start

    def __iter__(self) -> Iterator[Reading]:
        for i in range(self.count):
            for name in self.names:
                yield Reading(name, i, self.start + i)


@cv.source(waits=False)  # CPU work only: read in the loop, in turn with the others
def busy_ramp(*, count: int, sensor: str = "ramp") -> Iterator[Reading]:
    for i in range(count):
        yield Reading(sensor, i, float(i))


@cv.source
def ramp(*, count: int, sensor: str = "ramp") -> Iterator[Reading]:
    for i in range(count):
        yield Reading(sensor, i, float(i))


@cv.task
def scale(r: Reading, *, factor: float, offset: float = 0.0) -> Value:
    return Value(r.sensor, r.index, r.value * factor + offset)


@cv.task(key="sensor")
class Count:
    """One per sensor; ``history`` is a mutable argument: every instance must get its own."""

    def __init__(self, history: list[int]) -> None:
        self.history = history

    def __call__(self, r: Value) -> Scaled:
        seen = len(self.history)
        self.history.append(r.index)
        return Scaled(r.sensor, r.index, r.value, seen)


# -- two runs at once in one process: each sees its own frame store ---------------------------

BOTH_RUNNING = threading.Barrier(2, timeout=20)


@dataclass
class Seen:
    camera: str
    index: int
    shape: tuple[int, ...]
    first_pixel: int


@cv.source
def painted(*, camera: str, shape: tuple[int, int, int], count: int) -> Iterator[cv.Frame]:
    for i in range(count):
        yield cv.Frame.write(camera, np.full(shape, i % 250, np.uint8), i)
        if i == 0:
            BOTH_RUNNING.wait()  # the other run has its store by now: the two overlap


@cv.task
def look(f: cv.Frame) -> Seen:
    return Seen(f.camera, f.index, f.pixels.shape, int(f.pixels[0, 0, 0]))


# -- one source per camera ---------------------------------------------------------------------


@cv.task(replicas=2)
def split_scale(r: Reading) -> Value:
    """Declared with two replicas: fed by sources per camera, each replica takes whole ones."""
    return Value(r.sensor, r.index, r.value * 2.0)


def per_camera(cameras: int, count: int) -> list[cv.TaskSpec]:
    return [
        cv.bind(ramp, count=count, sensor=f"cam{i}").named(f"ramp[cam{i}]") for i in range(cameras)
    ]


@cv.source
def ticking(*, sensor: str, count: int, pause: float) -> Iterator[Reading]:
    """A camera that waits ``pause`` seconds for each frame."""
    for i in range(count):
        time.sleep(pause)
        yield Reading(sensor, i, float(i))


# -- cameras kept in step over processes --------------------------------------------------------


@dataclass
class Stamped:
    sensor: str
    index: int
    at: float  # time.monotonic() when the source read it (one clock for every process)


@cv.source
class FileCamera:
    """A file camera of ``count`` frames, read in ``pause`` seconds each, kept in step with
    the other cameras of its merge (conveyor's ``keep_in_step``)."""

    def __init__(self, sensor: str, count: int, pause: float = 0.0, in_step: bool = True):
        self.sensor, self.count, self.pause = sensor, count, pause
        self.keep_in_step = in_step

    def __iter__(self) -> Iterator[Stamped]:
        for i in range(self.count):
            time.sleep(self.pause)
            yield Stamped(self.sensor, i, time.monotonic())


@cv.task(cost=0.001)
def passed(s: Stamped) -> Stamped:
    return s


def file_cameras(in_step: bool) -> list[cv.TaskSpec]:
    """A slow camera, two fast ones, and a short one that ends early."""
    cameras = [("slow", 40, 0.01), ("fast1", 40, 0.0), ("fast2", 40, 0.0), ("short", 6, 0.0)]
    return [
        cv.bind(FileCamera, name, count, pause, in_step).named(f"cam[{name}]")
        for name, count, pause in cameras
    ]
