"""Message types and tasks shared by the graph, plan and backend tests (module level, so that
annotations resolve and spawned processes can import them)."""

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
class Detections:
    camera: str
    index: int
    count: int


@dataclass
class Tracks:
    camera: str
    index: int
    total: int


@cv.source
def cameras() -> Iterator[Frame]:
    for index in range(6):
        for camera in ("a", "b"):
            yield Frame(camera, index, np.full((4, 4), index, np.uint8))


@cv.task(resource="gpu", batch=4, cost=0.004)
def detect(frames: list[Frame]) -> list[Detections]:
    return [Detections(f.camera, f.index, int(f.pixels.sum())) for f in frames]


@cv.task(key="camera", cost=0.001)
class Track:
    def __init__(self) -> None:
        self.total = 0

    def __call__(self, det: Detections) -> Tracks:
        self.total += det.count
        return Tracks(det.camera, det.index, self.total)


RESULTS: list[Tracks] = []


@cv.task(cost=0.0005)
def collect(tracks: Tracks) -> None:
    RESULTS.append(tracks)
