"""Tasks and sources with arguments: ``.bind(...)`` checks and pickles them; every instance is
built from a fresh copy in the process that runs it."""

from __future__ import annotations

import threading

import pytest

import conveyor as cv
from tests.unit.bind_fixtures import Count, Reading, Scaled, Sensors, Value, ramp, scale


def test_arguments_reach_sources_and_tasks() -> None:
    graph = cv.Graph(
        [Sensors.bind(["a", "b"], 3, start=10.0), scale.bind(factor=2.0), Count.bind([])]
    )
    out = cv.run(graph, backend="inline", collect=["Count"]).outputs["Count"]
    got = sorted((s.sensor, s.index, s.value, s.seen) for s in out)
    want = sorted((n, i, 2.0 * (10.0 + i), i) for n in "ab" for i in range(3))
    # seen == index for both sensors: each keyed instance had its own copy of the list.
    assert got == want


def test_one_task_bound_twice_under_two_names() -> None:
    double = scale.bind(factor=2.0)
    graph = cv.Graph(
        [
            ramp.bind(count=4),
            double,
            cv.task(_shift),
        ]
    )
    out = cv.run(graph, backend="inline", collect=["_shift"]).outputs["_shift"]
    assert [r.value for r in out] == [100.0, 102.0, 104.0, 106.0]
    assert cv.bind(scale, factor=3.0).named("triple").name == "triple"


def _shift(v: Value) -> Scaled:
    return Scaled(v.sensor, v.index, v.value + 100.0, 0)


def test_plain_functions_and_classes_without_arguments_still_work() -> None:
    assert scale(Reading("s", 0, 2.0), factor=3.0) == Value("s", 0, 6.0)  # still a plain function
    assert list(Sensors(["x"], 2)) == [Reading("x", 0, 0.0), Reading("x", 1, 1.0)]


@pytest.mark.parametrize(
    ("bind", "message"),
    [
        (lambda: Sensors.bind(["a"]), "cannot bind these arguments"),
        (lambda: Sensors.bind(["a"], 2, colour="red"), "cannot bind these arguments"),
        (lambda: scale.bind(2.0), "keyword-only parameters"),
        (lambda: scale.bind(factr=2.0), "has no keyword-only parameter ['factr']"),
        (lambda: scale.bind(factor=threading.Lock()), "factor= (lock) cannot cross processes"),
        (lambda: Count.bind([lambda: 0]), "argument 0 (list) cannot cross processes"),
    ],
)
def test_bad_arguments_are_refused_when_bound(bind: object, message: str) -> None:
    with pytest.raises(cv.ConfigurationError) as info:
        bind()  # type: ignore[operator]
    assert message in str(info.value)


def test_a_graph_refuses_a_task_that_needs_arguments() -> None:
    with pytest.raises(cv.ConfigurationError, match=r"needs arguments \['names', 'count'\]"):
        cv.Graph([Sensors, scale.bind(factor=1.0)])
    with pytest.raises(cv.ConfigurationError, match=r"scale.bind\(\.\.\.\)"):
        cv.Graph([ramp.bind(count=1), scale])


def test_two_runs_in_two_threads_each_have_their_own_frame_store() -> None:
    """Settings and the frame store are the run's, not the process's."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.unit.bind_fixtures import look, painted

    def one(camera: str, shape: tuple[int, int, int]) -> list:
        graph = cv.Graph([painted.bind(camera=camera, shape=shape, count=30), look])
        cameras = [cv.CameraSpec(camera, shape, slots=4)]
        return cv.run(graph, backend="inline", cameras=cameras, collect=["look"]).outputs["look"]

    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(one, "left", (24, 32, 3))
        b = pool.submit(one, "right", (48, 16, 3))
        left, right = a.result(timeout=60), b.result(timeout=60)
    assert [(s.camera, s.shape, s.first_pixel) for s in left] == [
        ("left", (24, 32, 3), i) for i in range(30)
    ]
    assert [(s.camera, s.shape, s.first_pixel) for s in right] == [
        ("right", (48, 16, 3), i) for i in range(30)
    ]


def test_a_task_s_options_can_be_set_for_one_graph() -> None:
    spec = scale.bind(factor=2.0)
    waiting = spec.with_options(max_wait=30.0, timeout=5.0)
    assert (waiting.max_wait, waiting.timeout) == (30.0, 5.0)
    assert spec.max_wait != 30.0  # the task as declared is unchanged
    assert waiting.bound_arguments() == spec.bound_arguments()
    with pytest.raises(cv.ConfigurationError, match=r"with_options takes .* not \['batch'\]"):
        spec.with_options(batch=4)
    with pytest.raises(cv.ConfigurationError, match="max_wait must be a non-negative number"):
        spec.with_options(max_wait=-1)
