"""Cameras that come and go while a run goes on (module level: worker processes import them).

A ``Ticker`` is a camera: an item every ``period`` seconds with a frame of its own (8x8,
filled with its index), until it is removed from the run. It writes how many items it has
yielded to ``log`` before each, so a test can tell whether any was lost."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import conveyor as cv

PERIOD = 0.02  # seconds between two items of one camera
SHAPE = (8, 8)


@dataclass
class Shot:
    camera: str
    index: int  # 0, 1, 2, ... per camera
    slot: int  # the instant: time // PERIOD, the same for every camera
    frame: cv.Frame


@dataclass
class Seen:
    camera: str
    index: int
    slot: int
    pixel: int


@dataclass
class Instant:
    slot: int
    cameras: list[str]


@cv.source
class Ticker:
    def __init__(self, camera: str, log: str, count: int | None = None) -> None:
        self.camera, self.log, self.count = camera, Path(log), count

    def __iter__(self) -> Iterator[Shot]:
        i = 0
        while self.count is None or i < self.count:
            time.sleep(PERIOD)
            frame = cv.Frame.write(self.camera, np.full(SHAPE, i % 256, np.uint8), i)
            # Written whole or not at all: a source stopped in the middle of write_text
            # (which truncates first) would leave the test an empty count.
            part = self.log.with_suffix(".part")
            part.write_text(str(i + 1))
            os.replace(part, self.log)
            yield Shot(self.camera, i, int(time.time() // PERIOD), frame)
            i += 1


def camera(name: str, folder: Path) -> object:
    return cv.bind(Ticker, name, str(folder / f"{name}.count")).named(f"cam[{name}]")


def spec(name: str) -> cv.CameraSpec:
    return cv.CameraSpec(name, SHAPE, slots=16)


@cv.task(batch=4, max_wait=0.005)
def look(shots: list[Shot]) -> list[Seen]:
    return [Seen(s.camera, s.index, s.slot, int(s.frame.pixels[0, 0])) for s in shots]


@cv.task(key="camera")
class InOrder:
    """One per camera: refuses an item out of order (a lost or doubled one fails the run)."""

    def __init__(self) -> None:
        self.next = 0

    def __call__(self, seen: Seen) -> Seen:
        if seen.index != self.next:
            raise AssertionError(f"camera {seen.camera}: item {seen.index}, {self.next} expected")
        self.next += 1
        return seen


@cv.task(gather=cv.Gather(by="slot", member="camera"), max_wait=0.3, wire={"seen": "InOrder"})
def together(seen: list[Seen]) -> Instant:
    return Instant(seen[0].slot, sorted(s.camera for s in seen))


@cv.source
def stray() -> Iterator[Instant]:  # nothing in the run takes it: add_source refuses it
    yield Instant(0, [])
