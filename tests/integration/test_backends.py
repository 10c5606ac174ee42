"""One suite for every multi-process backend: the same graphs give the inline backend's outputs.

``BackendSuite`` holds the tests; each subclass names a backend (``local``: child processes;
``ray``: Ray actors). A new backend passes when a subclass of it passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

import conveyor as cv
from conveyor.plan import make_plan
from conveyor.testing import Fault, inject
from tests.integration.pipeline_fixtures import (
    CAMERAS,
    Smooth,
    SmoothReplicated,
    brighten,
    check_frame,
    expected_fill,
    fails_at_17,
    fails_run_at_17,
    frames,
    measure,
    measure_bright,
    scene,
    store_frames,
)

ITEMS = 120  # the fixture's frames: 40 instants of 3 cameras


def key(stats: list) -> list:
    return [(s.camera, s.index, round(s.mean, 9), round(s.running, 9)) for s in stats]


class BackendSuite:
    backend: ClassVar[str]
    sees_exit_status: ClassVar[bool] = True

    def run(self, graph: cv.Graph, **kwargs: Any) -> cv.RunResult:
        return cv.run(graph, backend=self.backend, **kwargs)

    def test_outputs_equal_inline_outputs_in_order(self) -> None:
        graph = cv.Graph([frames, measure, Smooth])
        inline = cv.run(graph, backend="inline", collect=["Smooth"])
        got = self.run(graph, workers=2, collect=["Smooth"])
        assert got.backend == self.backend
        assert len(inline.outputs["Smooth"]) == ITEMS
        assert key(got.outputs["Smooth"]) == key(inline.outputs["Smooth"])
        assert got.plan is not None and len(got.plan.pipelines) == 2

    def test_outputs_reach_on_output_as_they_come_in_order(self) -> None:
        graph = cv.Graph([frames, measure, Smooth])
        inline_given: list[Any] = []
        inline = cv.run(
            graph, backend="inline", collect=["Smooth"], on_output={"Smooth": inline_given.append}
        )
        assert key(inline_given) == key(inline.outputs["Smooth"])
        given: list[Any] = []
        got = self.run(graph, workers=2, collect=["measure"], on_output={"Smooth": given.append})
        assert key(given) == key(inline.outputs["Smooth"])
        assert "Smooth" not in got.outputs and len(got.outputs["measure"]) == ITEMS
        with pytest.raises(cv.ConfigurationError, match="on_output names"):
            self.run(graph, on_output={"nope": given.append})

    def test_every_task_in_its_own_pipeline(self) -> None:
        graph = cv.Graph([frames, measure, Smooth])
        plan = make_plan(graph, workers=3)
        assert len(plan.pipelines) == 3
        got = self.run(graph, plan=plan, collect=["measure", "Smooth"])
        inline = cv.run(graph, backend="inline", collect=["measure", "Smooth"])
        for name in ("measure", "Smooth"):
            assert key(got.outputs[name]) == key(inline.outputs[name])

    def test_user_error_reaches_the_parent_with_task_item_and_traceback(self) -> None:
        graph = cv.Graph([frames, measure, fails_run_at_17])
        with pytest.raises(cv.TaskFailed) as info:
            self.run(graph, workers=2)
        exc = info.value
        assert exc.task == "fails_run_at_17" and "index=17" in exc.item
        cause = str(exc.__cause__)  # the worker's traceback, with its own frames
        assert "RuntimeError: index 17 is cursed" in cause and "pipeline_fixtures.py" in cause

    def test_counters_equal_the_known_item_counts(self) -> None:
        graph = cv.Graph([frames, measure, fails_at_17])
        result = self.run(graph, workers=2, collect=["fails_at_17"])
        stats = result.stats
        assert stats is not None
        assert stats.tasks["frames"].items_out == ITEMS
        assert stats.tasks["measure"].items_in == ITEMS == stats.tasks["measure"].items_out
        assert stats.tasks["fails_at_17"].dead_letters == 3  # index 17 of 3 cameras
        assert len(result.outputs["fails_at_17"]) == ITEMS - 3

    def test_a_killed_pipeline_is_replaced_and_nothing_is_lost_or_doubled(self) -> None:
        graph = cv.Graph([frames, measure, Smooth])
        with inject(Fault("measure", item=10, mode="kill")):
            result = self.run(graph, workers=2, collect=["measure"])
        assert len(result.restarts) == 1 and result.restarts[0].reason.startswith("died")
        if self.sees_exit_status:  # a child's; Ray's workers are not this process's children
            assert "SIGKILL" in result.restarts[0].reason
        got = sorted((s.camera, s.index) for s in result.outputs["measure"])
        assert got == sorted((c, i) for c in ("c0", "c1", "c2") for i in range(40))

    def test_replicas_split_the_stream_and_the_merge_restores_its_order(self) -> None:
        graph = cv.Graph([frames, brighten, measure_bright, SmoothReplicated])
        plan = make_plan(graph, workers=2)
        assert len(plan.replicas_of("brighten")) == 2 == len(plan.replicas_of("SmoothReplicated"))
        names = ["brighten", "SmoothReplicated"]
        inline = cv.run(graph, backend="inline", collect=names)
        got = self.run(graph, plan=plan, collect=names)
        expected = inline.outputs["SmoothReplicated"]
        assert len(expected) == ITEMS - 3 * 6  # index % 7 == 3 dropped: 6 indices per camera
        # The whole stream in the inline order, not only each camera's: the merges restore it.
        assert key(got.outputs["SmoothReplicated"]) == key(expected)
        frames_got = [(f.camera, f.index, f.pixels.tobytes()) for f in got.outputs["brighten"]]
        want = [(f.camera, f.index, f.pixels.tobytes()) for f in inline.outputs["brighten"]]
        assert frames_got == want

    @pytest.mark.parametrize("workers", [2, 3])
    def test_gathering_across_processes_equals_inline(self, workers: int) -> None:
        graph = cv.Graph([frames, measure, scene])
        inline = cv.run(graph, backend="inline", collect=["scene"])
        got = self.run(graph, workers=workers, collect=["scene"])
        want = [(s.index, s.cameras, round(s.total, 6)) for s in inline.outputs["scene"]]
        assert [(s.index, s.cameras, round(s.total, 6)) for s in got.outputs["scene"]] == want
        assert len(want) == 40 and all(cams == ("c0", "c1", "c2") for _, cams, _ in want)

    def test_frames_travel_by_reference_and_slots_wait_until_released(self) -> None:
        graph = cv.Graph([store_frames, check_frame])
        result = self.run(graph, workers=2, cameras=CAMERAS, collect=["check_frame"])
        got = [(c.camera, c.index, c.fill) for c in result.outputs["check_frame"]]
        want = [(s.name, i, expected_fill(s.name, i) * 1001) for i in range(30) for s in CAMERAS]
        assert got == want


class TestLocal(BackendSuite):
    backend = "local"


@pytest.fixture(scope="class")
def ray_running() -> Iterator[None]:
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install ray")
    from conveyor.backends.ray_backend import ensure_ray

    ensure_ray({"num_cpus": 2})  # without its dashboard; the same for every test here
    yield
    ray.shutdown()


@pytest.mark.usefixtures("ray_running")
class TestRay(BackendSuite):
    backend = "ray"
    sees_exit_status = False
