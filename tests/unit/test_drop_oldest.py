"""A live source that drops its oldest waiting frame when its pipeline is behind (issue 19 item
6): the pipeline works on fresh frames, nothing blocks, every frame let go is counted; a source
that does not ask for it loses nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import conveyor as cv

FRAMES = 120
CAMERA = cv.CameraSpec("cam", (24, 32, 3), slots=2)  # the waiting items alone fill the store


@cv.source
class FastCamera:
    """A camera faster than its pipeline: a frame as fast as it can write one. (Not paced by
    sleeps: on a loaded machine a process that sleeps waits for its turn on a core, and a
    camera paced at 0.5 ms ran slower than its 10 ms pipeline in CI.)"""

    live = True

    def __init__(self, drop_oldest: bool) -> None:
        self.drop_oldest = drop_oldest

    def __iter__(self) -> Iterator[cv.Frame]:
        pixels = np.zeros(CAMERA.shape, np.uint8)
        for index in range(FRAMES):
            pixels[:] = index % 256
            yield cv.Frame.write("cam", pixels, index, ts=float(index))


@dataclass
class Seen:
    index: int
    value: int  # the pixels' value: the frame read is the frame written


@cv.task(cost=0.01)
def slow(frame: cv.Frame) -> Seen:  # 10 ms: far behind the camera, even with two replicas
    time.sleep(0.01)
    return Seen(frame.index, int(frame.pixels[0, 0, 0]))


def run(drop_oldest: bool, backend: str = "inline") -> tuple[list[Seen], cv.Stats]:
    graph = cv.Graph([FastCamera.bind(drop_oldest), slow])
    result = cv.run(graph, backend=backend, workers=2, cameras=[CAMERA], collect=["slow"])
    assert result.stats is not None
    return result.outputs["slow"], result.stats


def test_a_behind_pipeline_gets_the_newest_frames_and_the_rest_are_counted(
    backend: str = "inline",
) -> None:
    """Inline here; ``tests/integration/test_local_backend.py`` runs it on processes."""
    seen, stats = run(drop_oldest=True, backend=backend)
    indices = [s.index for s in seen]
    assert indices == sorted(set(indices))  # in order, none twice
    assert all(s.value == s.index % 256 for s in seen)  # no slot rewritten under a reader
    assert len(seen) < FRAMES / 2  # it was behind, and did not wait for the pipeline
    assert indices[-1] >= FRAMES - 3  # it ends on fresh frames, not a backlog
    # Every frame let go is counted (read after each item taken: the last ones may not be).
    dropped = stats.tasks["FastCamera"].dropped
    assert FRAMES - len(seen) - 3 <= dropped <= FRAMES - len(seen)


def test_without_it_the_source_waits_and_loses_nothing() -> None:
    seen, stats = run(drop_oldest=False)
    assert [s.index for s in seen] == list(range(FRAMES))
    assert all(s.value == s.index % 256 for s in seen)
    assert stats.tasks["FastCamera"].dropped == 0
