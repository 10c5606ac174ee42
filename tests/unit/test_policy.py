"""The scheduling policy as a pure function."""

from conveyor.runtime.policy import TaskState, choose


def st(name: str, **kw) -> TaskState:  # noqa: ANN003
    base = {"order": 1, "queued": 0, "capacity": 10}
    base.update(kw)
    return TaskState(name=name, **base)


def test_most_congested_input_first_then_downstream() -> None:
    tasks = [st("a", queued=2), st("b", queued=8), st("c", queued=8, order=5)]
    assert choose(tasks, 0.0).task == "c"


def test_full_outputs_are_skipped() -> None:
    tasks = [st("a", queued=9, outputs_full=True), st("b", queued=1)]
    assert choose(tasks, 0.0).task == "b"


def test_partial_batch_waits_until_due_and_others_run_meanwhile() -> None:
    tasks = [st("batch", queued=3, batch=8, max_wait=0.5, oldest=10.0), st("other", queued=1)]
    d = choose(tasks, 10.1)
    assert d.task == "other" and abs(d.wake_in - 0.4) < 1e-9
    assert choose([tasks[0]], 10.1).task is None
    assert choose([tasks[0]], 10.6).task == "batch"  # wait bound passed


def test_full_batch_or_closed_upstream_runs_at_once() -> None:
    assert choose([st("b", queued=8, batch=8, max_wait=9, oldest=0.0)], 0.0).task == "b"
    closed = st("b", queued=2, batch=8, max_wait=9, oldest=0.0, upstream_done=True)
    assert choose([closed], 0.0).task == "b"


def test_sources_run_only_when_nothing_else_can() -> None:
    src = st("src", is_source=True)
    assert choose([src, st("t", queued=1)], 0.0).task == "t"
    assert choose([src, st("t")], 0.0).task == "src"
    assert choose([st("src", is_source=True, exhausted=True)], 0.0).task is None
    assert choose([st("src", is_source=True, outputs_full=True)], 0.0).task is None


def test_the_source_whose_item_waited_longest_goes_first_and_a_waiting_one_not_at_all() -> None:
    from conveyor.runtime.policy import TaskState, choose

    a = TaskState("a", 0, 0, 1, is_source=True, oldest=5.0)
    b = TaskState("b", 1, 0, 1, is_source=True, oldest=3.0)
    c = TaskState("c", 2, 0, 1, is_source=True, waiting=True)
    assert choose([a, b, c], 10.0).task == "b"
    assert choose([a, c], 10.0).task == "a"
    assert choose([c], 10.0).task is None


def test_a_source_item_read_ahead_before_the_queued_work_came_runs_first() -> None:
    """A pipeline that also takes items from other processes may never run out of them: its
    own cameras' items, waiting in their threads, are served first come, first served."""
    src = st("cam", is_source=True, oldest=1.0)
    assert choose([src, st("t", queued=5, oldest=2.0)], 3.0).task == "cam"  # it came first
    assert choose([src, st("t", queued=5, oldest=0.5)], 3.0).task == "t"
    # a source read in the loop (no item waiting: no ``oldest``) still waits for the drain
    looped = st("cam", is_source=True, turn=1.0)
    assert choose([looped, st("t", queued=5, oldest=2.0)], 3.0).task == "t"


def test_sources_read_in_the_loop_take_turns() -> None:
    a = st("a", is_source=True, turn=5.0)
    b = st("b", is_source=True, turn=4.0)
    assert choose([a, b], 6.0).task == "b"  # b had its turn longer ago
    assert choose([a, st("b", is_source=True, turn=7.0)], 8.0).task == "a"
