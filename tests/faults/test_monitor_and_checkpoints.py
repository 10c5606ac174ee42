"""The rest of the fault table: hangs and sleeps past a timeout (the task monitor), poison items
that crash or hang their pipeline every time (quarantined as dead letters), crashes at start-up,
and stateful tasks that keep their state across a crash (checkpoints)."""

import dataclasses

import pytest

import conveyor as cv
from conveyor.testing import Fault, inject
from tests.integration.pipeline_fixtures import (
    CAMERAS,
    POISON,
    CountFrames,
    Smooth,
    SmoothExplicit,
    SmoothForgetful,
    SmoothReplicated,
    SmoothThenPass,
    after_smooth,
    brighten,
    check_frame_once,
    crashes_on_poison,
    frames,
    halve,
    hangs_on_poison,
    measure,
    measure_bright,
    measure_crashes_on_poison,
    store_frames,
    within_a_second,
)


def rows(items: list) -> list:
    """Messages as comparable tuples (floats rounded: they crossed processes as float64)."""
    return [
        tuple(round(v, 9) if isinstance(v, float) else v for v in dataclasses.astuple(x))
        for x in items
    ]


FAST_MONITOR = cv.RestartPolicy(stall_timeout=1.0)


def test_a_hung_task_is_killed_and_its_item_retried() -> None:
    graph = cv.Graph([frames, measure, halve])
    want = cv.run(graph, backend="inline", collect=["halve"]).outputs["halve"]
    with inject(Fault("halve", item=30, mode="hang")):
        result = cv.run(graph, backend="local", workers=2, collect=["halve"], restarts=FAST_MONITOR)
    (restart,) = result.restarts
    assert "hung in task 'halve'" in restart.reason
    assert restart.recovery is not None
    assert rows(result.outputs["halve"]) == rows(want)
    assert not result.dead_letters


def test_a_call_that_sleeps_past_its_timeout_is_killed() -> None:
    graph = cv.Graph([frames, measure, within_a_second])
    want = cv.run(graph, backend="inline", collect=["measure"]).outputs["measure"]
    with inject(Fault("within_a_second", item=10, mode="sleep", seconds=30)):
        result = cv.run(graph, backend="local", workers=2, collect=["within_a_second"])
    (restart,) = result.restarts
    assert "hung in task 'within_a_second'" in restart.reason
    assert rows(result.outputs["within_a_second"]) == rows(want)


@pytest.mark.parametrize(
    ("task", "reason"), [(crashes_on_poison, "crashed"), (hangs_on_poison, "hung")]
)
def test_an_item_that_kills_its_pipeline_every_time_becomes_a_dead_letter(
    task: object, reason: str
) -> None:
    graph = cv.Graph([frames, measure, task])
    name = task.spec.name  # type: ignore[attr-defined]
    # (not inline on this graph: the poison item would kill this process)
    want = cv.run(cv.Graph([frames, measure]), backend="inline", collect=["measure"])
    want = want.outputs["measure"]
    result = cv.run(graph, backend="local", workers=2, collect=[name])
    assert len(result.restarts) == 3  # quarantine_after=3
    (letter,) = result.dead_letters
    assert letter.task == name and letter.reason == reason and letter.attempts == 3
    assert rows(result.outputs[name]) == rows([s for s in want if (s.camera, s.index) != POISON])


def test_a_batch_that_kills_its_pipeline_is_split_to_find_the_poison_item() -> None:
    graph = cv.Graph([frames, measure_crashes_on_poison])
    result = cv.run(graph, backend="local", workers=2, collect=["measure_crashes_on_poison"])
    got = result.outputs["measure_crashes_on_poison"]
    (letter,) = result.dead_letters  # only the poison item, not its batch-mates
    assert letter.reason == "crashed"
    assert len(result.restarts) == 3
    keys = sorted((s.camera, s.index) for s in got)
    everything = {(c, i) for c in ("c0", "c1", "c2") for i in range(40)}
    assert keys == sorted(everything - {POISON})


@pytest.mark.parametrize("mode", ["kill", "exit"])
def test_a_crash_at_start_up_is_restarted(mode: str) -> None:
    graph = cv.Graph([frames, measure, halve])
    want = cv.run(graph, backend="inline", collect=["halve"]).outputs["halve"]
    with inject(Fault("halve", item=0, mode=mode, at="start")):
        result = cv.run(graph, backend="local", workers=2, collect=["halve"])
    assert len(result.restarts) == 1
    assert rows(result.outputs["halve"]) == rows(want)


@pytest.mark.parametrize("item", [3, 40, 100])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_stateful_task_keeps_its_state_across_a_crash(item: int, workers: int) -> None:
    # Equal values, not just equal keys: the state was restored, and no item was applied to
    # it twice (which a replay of the items since the checkpoint would do without care).
    graph = cv.Graph([frames, measure, Smooth])
    want = cv.run(graph, backend="inline", collect=["Smooth"]).outputs["Smooth"]
    with inject(Fault("Smooth", item=item, mode="kill")):
        result = cv.run(graph, backend="local", workers=workers, collect=["Smooth"])
    assert len(result.restarts) == 1
    assert rows(result.outputs["Smooth"]) == rows(want)


@pytest.mark.parametrize("item", [3, 7])
def test_items_the_checkpoint_covers_are_not_applied_to_the_state_again(item: int) -> None:
    # One pipeline: SmoothThenPass's inputs stay uncommitted until after_smooth is done with
    # them, so after a crash in after_smooth some replayed items are already in the restored
    # state: their outputs must come from the checkpoint, not from a second call.
    graph = cv.Graph([frames, measure, SmoothThenPass, after_smooth])
    want = cv.run(graph, backend="inline", collect=["after_smooth"]).outputs["after_smooth"]
    with inject(Fault("after_smooth", item=item, mode="kill")):
        result = cv.run(graph, backend="local", workers=1, collect=["after_smooth"])
    assert len(result.restarts) == 1
    assert rows(result.outputs["after_smooth"]) == rows(want)


def test_state_and_restore_methods_are_used_when_defined() -> None:
    graph = cv.Graph([frames, measure, SmoothExplicit])
    want = cv.run(graph, backend="inline", collect=["SmoothExplicit"]).outputs["SmoothExplicit"]
    with inject(Fault("SmoothExplicit", item=57, mode="segfault")):
        result = cv.run(graph, backend="local", workers=2, collect=["SmoothExplicit"])
    assert len(result.restarts) == 1
    assert rows(result.outputs["SmoothExplicit"]) == rows(want)


def test_without_checkpoints_a_replacement_starts_afresh() -> None:
    graph = cv.Graph([frames, measure, SmoothForgetful])
    want = cv.run(graph, backend="inline", collect=["SmoothForgetful"]).outputs["SmoothForgetful"]
    with inject(Fault("SmoothForgetful", item=40, mode="kill")):
        result = cv.run(graph, backend="local", workers=2, collect=["SmoothForgetful"])
    got = result.outputs["SmoothForgetful"]
    assert sorted((s.camera, s.index) for s in got) == sorted((s.camera, s.index) for s in want)
    assert rows(got) != rows(want)  # the running values restarted: what checkpoints prevent


@pytest.mark.parametrize("crash", [False, True])
def test_a_stateful_task_over_frames_does_not_starve_its_source_of_slots(crash: bool) -> None:
    graph = cv.Graph([store_frames, CountFrames])
    want = cv.run(graph, backend="inline", cameras=CAMERAS, collect=["CountFrames"])
    faults = [Fault("CountFrames", item=40, mode="kill")] if crash else []
    with inject(*faults):
        got = cv.run(graph, backend="local", workers=1, cameras=CAMERAS, collect=["CountFrames"])
    assert len(got.restarts) == int(crash)
    key = [(c.camera, c.index, c.fill) for c in got.outputs["CountFrames"]]
    assert key == [(c.camera, c.index, c.fill) for c in want.outputs["CountFrames"]]


REPLICATED = [frames, brighten, measure_bright, SmoothReplicated]


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize(
    ("victim", "item"),
    [
        ("frames", 50),  # the source: it splits into brighten's replicas
        ("brighten", 20),  # a replica
        ("measure_bright", 9),  # merges brighten, splits into SmoothReplicated
        ("SmoothReplicated", 30),  # a keyed stateful replica
    ],
)
def test_a_pipeline_of_a_replicated_stage_restarts_losing_and_doubling_nothing(
    workers: int, victim: str, item: int
) -> None:
    graph = cv.Graph(REPLICATED)
    plan = cv.make_plan(graph, workers=workers)
    assert len(plan.replicas_of("brighten")) == 2 == len(plan.replicas_of("SmoothReplicated"))
    want = cv.run(graph, backend="inline", collect=["SmoothReplicated"])
    with inject(Fault(victim, item=item, mode="kill", at="call")):
        result = cv.run(graph, backend="local", plan=plan, collect=["SmoothReplicated"])
    assert len(result.restarts) == 1
    # the whole stream in order, with the values of an uninterrupted run
    assert rows(result.outputs["SmoothReplicated"]) == rows(want.outputs["SmoothReplicated"])


def test_frame_slots_held_by_dead_processes_are_given_back() -> None:
    # Each kill leaves the dead process's private holds (frames its source wrote, in flight)
    # behind; with 3 slots per camera a few kills would starve the source for good.
    graph = cv.Graph([store_frames, check_frame_once])
    want = cv.run(graph, backend="inline", cameras=CAMERAS, collect=["check_frame_once"])
    faults = [Fault("check_frame_once", item=n, mode="kill") for n in (10, 12, 14, 16, 18)]
    with inject(*faults):
        got = cv.run(
            graph, backend="local", workers=1, cameras=CAMERAS, collect=["check_frame_once"]
        )
    assert len(got.restarts) == 5
    key = [(c.camera, c.index, c.fill) for c in got.outputs["check_frame_once"]]
    assert key == [(c.camera, c.index, c.fill) for c in want.outputs["check_frame_once"]]
