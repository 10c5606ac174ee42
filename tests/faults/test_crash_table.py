"""The fault table: a pipeline killed at a known item is restarted, and the run's outputs are
the inline run's, each exactly once (crash modes x crash points)."""

import pytest

import conveyor as cv
from conveyor.testing import Fault, inject
from tests.integration.pipeline_fixtures import (
    CAMERAS,
    Smooth,
    check_frame_once,
    combine,
    fails_at_17,
    frames,
    halve,
    measure,
    retries_on_error,
    stops_on_error,
    store_frames,
)

MODES = ["exit", "kill", "segfault"]

# crash point -> (graph, the task to crash, the item, the task whose outputs are compared)
POINTS = {
    "inside a batch": ([frames, measure], "measure", 7, "measure"),
    "mid-item, downstream of a batch": ([frames, measure, halve, combine], "halve", 30, "combine"),
    "inside a join": ([frames, measure, halve, combine], "combine", 50, "combine"),
}


def rows(items: list) -> list:
    return [(x.camera, x.index, round(x.mean, 9)) for x in items]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("point", sorted(POINTS))
def test_a_killed_pipeline_restarts_and_loses_and_doubles_nothing(mode: str, point: str) -> None:
    tasks, victim, item, compared = POINTS[point]
    graph = cv.Graph(tasks)
    want = cv.run(graph, backend="inline", collect=[compared]).outputs[compared]
    with inject(Fault(victim, item=item, mode=mode)):
        result = cv.run(graph, backend="local", workers=2, collect=[compared])
    assert len(result.restarts) == 1
    restart = result.restarts[0]
    assert restart.recovery is not None and restart.recovery > 0
    signal_names = {"exit": "exit code 13", "kill": "SIGKILL", "segfault": "SIGSEGV"}
    assert signal_names[mode] in restart.reason
    assert rows(result.outputs[compared]) == rows(want)  # nothing lost, nothing doubled


def test_a_stateful_task_loses_no_item_across_a_restart() -> None:
    # Without a checkpoint the new instance starts afresh, so values may differ after the
    # crash; but every item's output arrives, once.
    graph = cv.Graph([frames, measure, Smooth])
    with inject(Fault("Smooth", item=40, mode="kill")):
        result = cv.run(graph, backend="local", workers=2, collect=["Smooth"])
    keys = [(s.camera, s.index) for s in result.outputs["Smooth"]]
    assert len(result.restarts) == 1
    assert sorted(keys) == sorted({(c, i) for c in ("c0", "c1", "c2") for i in range(40)})


def test_a_crash_while_holding_frame_slots_recovers() -> None:
    graph = cv.Graph([store_frames, check_frame_once])
    want = cv.run(graph, backend="inline", cameras=CAMERAS, collect=["check_frame_once"])
    with inject(Fault("check_frame_once", item=20, mode="kill")):
        got = cv.run(
            graph, backend="local", workers=2, cameras=CAMERAS, collect=["check_frame_once"]
        )
    assert len(got.restarts) == 1
    key = [(c.camera, c.index, c.fill) for c in got.outputs["check_frame_once"]]
    assert key == [(c.camera, c.index, c.fill) for c in want.outputs["check_frame_once"]]


def test_restarts_past_the_limit_fail_the_run_clearly() -> None:
    graph = cv.Graph([frames, measure])
    poison = Fault("measure", item=3, mode="exit", once=False)  # crashes every replacement
    with inject(poison), pytest.raises(cv.PipelineCrashed, match="after 2 restarts"):
        cv.run(graph, backend="local", workers=2, restarts=cv.RestartPolicy(limit=2))


@pytest.mark.parametrize("backend", ["inline", "local"])
def test_items_that_raise_go_to_the_dead_letters_and_the_run_goes_on(backend: str) -> None:
    graph = cv.Graph([frames, measure, fails_at_17])
    want = cv.run(graph, backend="inline", collect=["measure"]).outputs["measure"]
    result = cv.run(graph, backend=backend, workers=2, collect=["fails_at_17"])
    assert not result.restarts
    assert sorted(d.item for d in result.dead_letters) == sorted(
        repr(s) for s in want if s.index == 17
    )
    for letter in result.dead_letters:
        assert letter.task == "fails_at_17" and letter.reason == "raised"
        assert "cursed" in letter.error and "RuntimeError" in letter.traceback
    assert rows(result.outputs["fails_at_17"]) == rows([s for s in want if s.index != 17])


def test_a_batch_that_raises_is_retried_item_by_item() -> None:
    # A transient error in a batch call: each of its items runs again alone and succeeds.
    graph = cv.Graph([frames, measure])
    want = cv.run(graph, backend="inline", collect=["measure"]).outputs["measure"]
    with inject(Fault("measure", item=3, mode="raise")):
        result = cv.run(graph, backend="local", workers=2, collect=["measure"])
    assert not result.dead_letters and not result.restarts
    assert rows(result.outputs["measure"]) == rows(want)


def test_on_error_fail_stops_the_run() -> None:
    graph = cv.Graph([frames, measure, stops_on_error])
    fault = Fault("stops_on_error", item=5, mode="raise")
    with inject(fault), pytest.raises(cv.TaskFailed, match="injected fault"):
        cv.run(graph, backend="local", workers=2)


def test_on_error_retry_calls_again() -> None:
    graph = cv.Graph([frames, measure, retries_on_error])
    want = cv.run(graph, backend="inline", collect=["measure"]).outputs["measure"]
    with inject(Fault("retries_on_error", item=5, mode="raise")):
        result = cv.run(graph, backend="local", workers=2, collect=["retries_on_error"])
    assert not result.dead_letters
    assert rows(result.outputs["retries_on_error"]) == rows(want)


@pytest.mark.parametrize("mode", ["kill", "segfault"])
def test_the_source_pipeline_dies_and_its_replacement_resumes_the_source(mode: str) -> None:
    # One pipeline runs everything: the replacement must skip what its predecessor finished
    # and re-emit the rest, and the collect ring must drop what was already delivered.
    graph = cv.Graph([frames, measure, halve, combine])
    want = cv.run(graph, backend="inline", collect=["combine"]).outputs["combine"]
    with inject(Fault("combine", item=70, mode=mode)):
        result = cv.run(graph, backend="local", workers=1, collect=["combine"])
    assert len(result.restarts) == 1
    assert rows(result.outputs["combine"]) == rows(want)


def test_outputs_written_before_the_crash_are_not_written_again() -> None:
    # measure's outputs reach the parent (a ring) before halve, in the same pipeline, takes
    # them; killing halve leaves those items unfinished, so the replacement replays them and
    # measure produces the same outputs again: the ring must drop them by origin.
    graph = cv.Graph([frames, measure, halve])
    want = cv.run(graph, backend="inline", collect=["measure"]).outputs["measure"]
    with inject(Fault("halve", item=30, mode="kill")):
        result = cv.run(graph, backend="local", workers=1, collect=["measure"])
    assert len(result.restarts) == 1
    assert rows(result.outputs["measure"]) == rows(want)
