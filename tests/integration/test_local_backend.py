"""The local backend: same outputs as the inline backend, errors and crashes reach the parent."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import conveyor as cv
from conveyor.plan import make_plan
from conveyor.transport.segment import leaked_segments
from tests.integration.pipeline_fixtures import (
    CAMERAS,
    Frame,
    Smooth,
    SmoothReplicated,
    brighten,
    brighten3,
    check_frame,
    combine,
    dies_at_5,
    expected_fill,
    fails_run_at_17,
    frames,
    halve,
    measure,
    measure_bright,
    scene,
    store_frames,
)


def key(stats: list) -> list:
    return [(s.camera, s.index, round(s.mean, 9), round(s.running, 9)) for s in stats]


def test_local_outputs_equal_inline_outputs_in_order() -> None:
    graph = cv.Graph([frames, measure, Smooth])
    inline = cv.run(graph, backend="inline", collect=["Smooth"])
    local = cv.run(graph, backend="local", workers=2, collect=["Smooth"])
    assert len(inline.outputs["Smooth"]) == 120
    assert key(local.outputs["Smooth"]) == key(inline.outputs["Smooth"])
    assert local.plan is not None and len(local.plan.pipelines) == 2


def test_every_task_in_its_own_pipeline() -> None:
    graph = cv.Graph([frames, measure, Smooth])
    plan = make_plan(graph, workers=3)
    assert len(plan.pipelines) == 3
    local = cv.run(graph, backend="local", plan=plan, collect=["measure", "Smooth"])
    inline = cv.run(graph, backend="inline", collect=["measure", "Smooth"])
    for name in ("measure", "Smooth"):
        assert key(local.outputs[name]) == key(inline.outputs[name])


def test_user_error_reaches_the_parent_with_task_item_and_traceback() -> None:
    graph = cv.Graph([frames, measure, fails_run_at_17])
    with pytest.raises(cv.TaskFailed) as info:
        cv.run(graph, backend="local", workers=2)
    exc = info.value
    assert exc.task == "fails_run_at_17" and "index=17" in exc.item
    assert "index 17 is cursed" in str(exc)
    cause = str(exc.__cause__)  # the worker's traceback, with its own frames
    assert "RuntimeError: index 17 is cursed" in cause and "pipeline_fixtures.py" in cause


def test_a_pipeline_that_dies_is_reported_with_its_exit_code() -> None:
    graph = cv.Graph([frames, measure, dies_at_5])
    with pytest.raises(cv.PipelineCrashed, match="exit code 3") as info:
        cv.run(graph, backend="local", workers=2)
    assert info.value.exitcode == 3


def test_bad_run_arguments() -> None:
    graph = cv.Graph([frames, measure])
    with pytest.raises(cv.ConfigurationError, match="backend"):
        cv.run(graph, backend="threads")
    with pytest.raises(cv.ConfigurationError, match="not in the graph"):
        cv.run(graph, backend="inline", collect=["nope"])


SHAPES = {
    "chain": lambda: [frames, measure],
    "keyed": lambda: [frames, measure, Smooth],
    "fan-out-join": lambda: [frames, measure, halve, combine],
}


@settings(max_examples=6, deadline=None, derandomize=True)
@given(shape=st.sampled_from(sorted(SHAPES)), workers=st.integers(1, 3))
def test_property_local_equals_inline(shape: str, workers: int) -> None:
    graph = cv.Graph(SHAPES[shape]())
    last = graph.order[-1]
    inline = cv.run(graph, backend="inline", collect=[last])
    local = cv.run(graph, backend="local", workers=workers, collect=[last])
    # Same outputs in the same order per key (camera).
    for cam in ("c0", "c1", "c2"):
        a = [x for x in key(inline.outputs[last]) if x[0] == cam]
        b = [x for x in key(local.outputs[last]) if x[0] == cam]
        assert a == b and len(a) == 40


def test_ctrl_c_stops_every_pipeline_and_cleans_up() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conveyor.cli",
            "run",
            "tests.integration.pipeline_fixtures:endless_graph",
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A shell without job control starts background jobs with SIGINT ignored, and Python
        # then never raises KeyboardInterrupt: give the child Ctrl-C back, whoever runs us.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "running" in line:
                break
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"pipelines outlived Ctrl-C: {alive}"
    deadline = time.monotonic() + 5
    while leaked_segments({proc.pid}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leaked_segments({proc.pid}) == []


def test_tasks_defined_inside_a_function_are_refused_before_any_process_starts() -> None:
    @cv.task
    def local_task(f: Frame) -> None: ...

    graph = cv.Graph([frames, local_task])
    with pytest.raises(cv.ConfigurationError, match="defined inside a function"):
        cv.run(graph, backend="local")
    assert cv.run(graph, backend="inline").backend == "inline"  # fine in one process


def test_replicas_split_the_stream_and_the_merge_restores_its_order() -> None:
    graph = cv.Graph([frames, brighten, measure_bright, SmoothReplicated])
    plan = make_plan(graph, workers=2)
    assert len(plan.replicas_of("brighten")) == 2 == len(plan.replicas_of("SmoothReplicated"))
    names = ["brighten", "SmoothReplicated"]
    inline = cv.run(graph, backend="inline", collect=names)
    local = cv.run(graph, backend="local", plan=plan, collect=names)
    expected = inline.outputs["SmoothReplicated"]
    assert len(expected) == 120 - 3 * 6  # index % 7 == 3 dropped: 6 indices per camera
    # The whole stream in the inline order, not only each camera's: the merges restore it.
    assert key(local.outputs["SmoothReplicated"]) == key(expected)
    got = [(f.camera, f.index, f.pixels.tobytes()) for f in local.outputs["brighten"]]
    want = [(f.camera, f.index, f.pixels.tobytes()) for f in inline.outputs["brighten"]]
    assert got == want


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("heavy", [brighten, brighten3], ids=["2 replicas", "3 replicas"])
def test_replicated_runs_equal_inline(workers: int, heavy: object) -> None:
    graph = cv.Graph([frames, heavy, measure_bright, Smooth])
    inline = cv.run(graph, backend="inline", collect=["Smooth"])
    local = cv.run(graph, backend="local", workers=workers, collect=["Smooth"])
    assert key(local.outputs["Smooth"]) == key(inline.outputs["Smooth"])


@pytest.mark.parametrize("workers", [2, 3])
def test_gathering_across_processes_equals_inline(workers: int) -> None:
    graph = cv.Graph([frames, measure, scene])
    inline = cv.run(graph, backend="inline", collect=["scene"])
    local = cv.run(graph, backend="local", workers=workers, collect=["scene"])
    want = [(s.index, s.cameras, round(s.total, 6)) for s in inline.outputs["scene"]]
    assert [(s.index, s.cameras, round(s.total, 6)) for s in local.outputs["scene"]] == want
    assert len(want) == 40 and all(cams == ("c0", "c1", "c2") for _, cams, _ in want)


@pytest.mark.parametrize("backend", ["inline", "local"])
def test_frames_travel_by_reference_and_slots_wait_until_released(backend: str) -> None:
    graph = cv.Graph([store_frames, check_frame])
    result = cv.run(graph, backend=backend, workers=2, cameras=CAMERAS, collect=["check_frame"])
    got = [(c.camera, c.index, c.fill) for c in result.outputs["check_frame"]]
    want = [(s.name, i, expected_fill(s.name, i) * 1001) for i in range(30) for s in CAMERAS]
    assert got == want


def test_a_run_without_cameras_says_how_to_get_a_frame_store() -> None:
    with pytest.raises(cv.TaskFailed, match="cameras="):
        cv.run(cv.Graph([store_frames, check_frame]), backend="inline")
