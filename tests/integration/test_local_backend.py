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
from conveyor.transport.segment import leaked_segments
from tests.integration.pipeline_fixtures import (
    Frame,
    Smooth,
    brighten,
    brighten3,
    check_frame,
    combine,
    dies_at_5,
    frames,
    halve,
    measure,
    measure_bright,
    store_frames,
)


def key(stats: list) -> list:
    return [(s.camera, s.index, round(s.mean, 9), round(s.running, 9)) for s in stats]


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


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("heavy", [brighten, brighten3], ids=["2 replicas", "3 replicas"])
def test_replicated_runs_equal_inline(workers: int, heavy: object) -> None:
    graph = cv.Graph([frames, heavy, measure_bright, Smooth])
    inline = cv.run(graph, backend="inline", collect=["Smooth"])
    local = cv.run(graph, backend="local", workers=workers, collect=["Smooth"])
    assert key(local.outputs["Smooth"]) == key(inline.outputs["Smooth"])


def test_a_run_without_cameras_says_how_to_get_a_frame_store() -> None:
    with pytest.raises(cv.TaskFailed, match="cameras="):
        cv.run(cv.Graph([store_frames, check_frame]), backend="inline")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_workers_die_with_their_driver_however_it_dies(signum: int) -> None:
    """Killed (SIGKILL: no clean-up of its own), terminated or hung up, the driver takes its
    pipelines with it within a second, and its janitor unlinks its shared memory."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "conveyor.cli", "run"]
    cmd += ["tests.integration.pipeline_fixtures:endless_graph", "--workers", "2"]
    # The driver takes each signal as a driver does by default: under nohup (SIGHUP ignored,
    # and inherited so) it would outlive a SIGHUP, as nohup means it to.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "running" in line:
                break
        workers = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if "multiprocessing" in " ".join(p.cmdline())
        ]
        assert len(workers) >= 2
        proc.send_signal(signum)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # and its pipes closed
    gone, alive = psutil.wait_procs(workers, timeout=1.0)
    running = [p for p in alive if _still_runs(p)]  # a zombie has exited (init reaps it)
    assert not running, f"pipelines outlived their driver ({signal.Signals(signum).name})"
    deadline = time.monotonic() + 5
    while leaked_segments({proc.pid}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leaked_segments({proc.pid}) == []
    if signum == signal.SIGTERM:  # stopped as Ctrl-C stops it
        assert proc.returncode == 130


def _still_runs(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


_LATE_WRITER = r"""
import os, sys, time
from conveyor.transport import janitor
owner = os.getpid()
janitor.watch(f"conveyor-{owner}-segment")
if os.fork() == 0:  # a worker of the owner's: it does not hold the janitor's pipe (spawned)
    os.close(janitor._proc.stdin.fileno())
    deadline = time.monotonic() + 30  # never outlive the test
    while os.getppid() == owner and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.05)  # its owner was killed a moment ago; it saves one more checkpoint
    with open(f"/dev/shm/conveyor-{owner}-ckpt-late", "w") as f:
        f.write("state")
    os._exit(0)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="checkpoints live in /dev/shm")
def test_a_file_written_just_after_its_owner_was_killed_is_swept_too() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _LATE_WRITER], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    late = f"conveyor-{proc.pid}-ckpt-late"
    deadline = time.monotonic() + 10  # the janitor sweeps again for 8 s
    while leaked_segments({proc.pid}) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert leaked_segments({proc.pid}) == []  # the watched name, and the late file
    finally:
        for name in leaked_segments({proc.pid}):
            os.unlink(f"/dev/shm/{name}")
    assert not os.path.exists(f"/dev/shm/{late}")


def test_bound_arguments_reach_the_workers_and_their_replacements() -> None:
    from conveyor.testing import Fault, inject
    from tests.unit.bind_fixtures import Count, Sensors, scale

    graph = cv.Graph(
        [Sensors.bind(["a", "b", "c"], 40, start=5.0), scale.bind(factor=-1.0), Count.bind([])]
    )
    want = cv.run(graph, backend="inline", collect=["Count"]).outputs["Count"]
    with inject(Fault("scale", item=30, mode="kill")):
        result = cv.run(graph, backend="local", workers=2, collect=["Count"])
    assert len(result.restarts) == 1

    def rows(out: list) -> list:
        return sorted((s.sensor, s.index, s.value, s.seen) for s in out)

    assert rows(result.outputs["Count"]) == rows(want)
    assert rows(want)[0] == ("a", 0, -5.0, 0)


def test_a_killed_pipeline_restarts_in_the_warm_spare() -> None:
    """Once the pipelines are started, a spare process waits with the graph's modules
    imported; a pipeline that dies is replaced by it (a process that existed before the
    death), and a new spare waits in turn. Every item once, and no process is left."""
    from conveyor.testing import Fault, inject
    from tests.integration.pipeline_fixtures import numbers, where

    graph = cv.Graph([numbers, where])
    plan = cv.make_plan(graph, workers=2)
    with inject(Fault("where", item=40, mode="kill")):
        result = cv.run(graph, backend="local", plan=plan, collect=["where"])
    assert len(result.restarts) == 1
    seen = sorted(result.outputs["where"], key=lambda s: s.index)
    assert [s.index for s in seen] == list(range(60))
    first, last = seen[0].pid, seen[-1].pid
    assert first != last  # the pipeline running ``where`` was replaced
    before = set().union(*(s.siblings for s in seen if s.pid == first))
    assert last in before, (last, before)  # by the spare that waited before the death
    assert len(before) >= len(plan.pipelines)  # the other pipeline and the spare


def test_a_live_source_s_dropped_frames_reach_the_statistics() -> None:
    from tests.unit.test_stats import (
        test_a_live_source_s_dropped_frames_reach_the_statistics_and_the_dashboard as check,
    )

    check(backend="local")


def test_a_live_source_drops_its_oldest_frames_when_the_pipelines_are_behind() -> None:
    from tests.unit.test_drop_oldest import (
        test_a_behind_pipeline_gets_the_newest_frames_and_the_rest_are_counted as check,
    )

    check(backend="local")


def test_sources_per_camera_over_processes_and_a_camera_that_crashes() -> None:
    """Six camera sources spread over two pipelines with a task partitioned by stream: every
    camera's items arrive once each and in order; a killed camera's pipeline restarts and no
    other camera loses or repeats an item."""
    from conveyor.testing import Fault, inject
    from tests.unit.bind_fixtures import Count, per_camera, split_scale

    graph = cv.Graph([*per_camera(6, 60), split_scale, Count.bind([])])
    want = cv.run(graph, backend="inline", collect=["Count"]).outputs["Count"]
    # Cameras as dear as the task they feed (each 1/6 of the items): they spread over both.
    costs = {"split_scale": 0.01, "Count": 0.001} | {f"ramp[cam{c}]": 0.012 for c in range(6)}
    plan = cv.make_plan(graph, workers=2, costs=costs)
    sources = {p.index for p in plan.pipelines for u in p.units if u.task.startswith("ramp")}
    assert len(sources) == 2, plan.describe()  # the cameras decode on both cores
    with inject(Fault("ramp[cam3]", item=20, mode="kill")):
        result = cv.run(graph, backend="local", plan=plan, collect=["Count", "split_scale"])
    assert len(result.restarts) == 1

    def rows(out: list) -> list:
        return sorted((s.sensor, s.index, s.value, s.seen) for s in out)

    assert rows(result.outputs["Count"]) == rows(want)
    assert len(want) == 360 and all(s.seen == s.index for s in want)
    got = result.outputs["split_scale"]  # collected from both replicas by the driver
    assert sorted((v.sensor, v.index) for v in got) == sorted((s.sensor, s.index) for s in want)


@pytest.mark.parametrize("in_step", [True, False])
def test_file_cameras_in_other_processes_keep_in_step(in_step: bool) -> None:
    """Four camera sources over two processes, one slow: kept in step, no camera reads more
    than LEAD frames ahead of the slowest one still running (one that ended holds no one
    back); not kept in step, the fast ones run far ahead (what the bound prevents)."""
    from conveyor.runtime.progress import LEAD
    from tests.unit.bind_fixtures import file_cameras, passed

    graph = cv.Graph([*file_cameras(in_step), passed])
    cams = ("slow", "fast1", "fast2", "short")  # dear enough to spread over both processes
    plan = cv.make_plan(
        graph, workers=2, costs={"passed": 0.001} | {f"cam[{c}]": 0.008 for c in cams}
    )
    homes = {u.task: p.index for p in plan.pipelines for u in p.units}
    assert homes["cam[slow]"] != homes["cam[fast1]"] or homes["cam[slow]"] != homes["cam[fast2]"]
    got = cv.run(graph, backend="local", plan=plan, collect=["passed"]).outputs["passed"]
    assert sorted((s.sensor, s.index) for s in got) == sorted(
        (name, i)
        for name, n in [("slow", 40), ("fast1", 40), ("fast2", 40), ("short", 6)]
        for i in range(n)
    )
    slow = sorted(s.at for s in got if s.sensor == "slow")
    ahead = max(s.index - sum(t <= s.at for t in slow) for s in got if s.sensor.startswith("fast"))
    if in_step:
        assert ahead <= LEAD, ahead
    else:
        assert ahead > 2 * LEAD, ahead
