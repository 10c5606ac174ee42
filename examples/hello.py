"""A first conveyor graph: synthetic cameras -> brightness (batched) -> smoothing per camera.

conveyor plan examples/hello.py:graph
conveyor run examples/hello.py:graph --backend local
conveyor run examples/hello.py:graph --backend inline
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import conveyor as cv


@dataclass
class Frame:
    camera: str
    index: int
    pixels: np.ndarray  # (h, w, 3) uint8


@dataclass
class Brightness:
    camera: str
    index: int
    value: float


@cv.source
def cameras() -> Iterator[Frame]:
    """Four cameras, 100 frames each, a brightness ramp per camera."""
    for index in range(100):
        for c in range(4):
            level = (index * (c + 1)) % 256
            yield Frame(f"cam-{c}", index, np.full((240, 320, 3), level, np.uint8))


@cv.task(batch=8, max_wait=0.01)
def brightness(frames: list[Frame]) -> list[Brightness]:
    """Batch-capable: one call sees up to 8 frames (from any camera)."""
    return [Brightness(f.camera, f.index, float(f.pixels.mean())) for f in frames]


@cv.task(key="camera")
class Smooth:
    """Stateful, one instance per camera: an exponential moving average."""

    def __init__(self) -> None:
        self.value: float | None = None

    def __call__(self, b: Brightness) -> Brightness | None:
        self.value = b.value if self.value is None else 0.8 * self.value + 0.2 * b.value
        return Brightness(b.camera, b.index, self.value)


@cv.task(wire={"b": "Smooth"})  # both brightness and Smooth produce Brightness: say which
def report(b: Brightness) -> None:
    """A sink: prints one line per camera every 25 frames."""
    if b.index % 25 == 0:
        print(f"{b.camera} frame {b.index:3d}: smoothed brightness {b.value:6.1f}", flush=True)


graph = cv.Graph([cameras, brightness, Smooth, report])
