"""What a running service knows now, for its web page: the people on the floor at the last
instant, and the pipeline's latest statistics. Written by the service's threads, read by the
page's; each value is replaced whole (one reference), so a reader never sees half an update.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PeopleNow:
    at: float  # epoch seconds of the instant
    ids: list[int]
    xy: list[tuple[float, float]]  # floor metres
    cameras: list[str]  # the cameras that saw the instant


@dataclass
class LiveView:
    """The latest of each; None until the first comes."""

    people: PeopleNow | None = None
    stats: Any = None  # conveyor.Stats
    last_frame: dict[str, float] = field(default_factory=dict)  # camera -> epoch of its last
    started: float = field(default_factory=time.time)

    def saw(self, at: float, ids: np.ndarray, xy: np.ndarray, cameras: list[str]) -> None:
        points = [(round(float(x), 3), round(float(y), 3)) for x, y in np.reshape(xy, (-1, 2))]
        self.people = PeopleNow(at, [int(i) for i in ids], points, list(cameras))
        frames = dict(self.last_frame)
        frames.update(dict.fromkeys(cameras, at))
        self.last_frame = frames

    def watch(self, stats: Any) -> None:
        """A conveyor observer: the run's statistics every second."""
        self.stats = stats
