"""The pipeline loop in one process (what the inline backend runs)."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import conveyor as cv
from conveyor.graph import Graph
from conveyor.runtime.context import LoopContext, LoopSettings
from conveyor.runtime.loop import PipelineLoop


@dataclass
class Num:
    key: str
    i: int


@dataclass
class Pair:
    left: int
    right: int


@cv.source
def numbers() -> Iterator[Num]:
    for i in range(20):
        yield Num("ab"[i % 2], i)


BATCHES: list[int] = []
DEPTHS: list[int] = []


@cv.task(batch=8, max_wait=60)
def batched(items: list[Num]) -> list[Num]:
    BATCHES.append(len(items))
    return [Num(n.key, n.i * 10) for n in items]


@cv.task(key="key")
class RunningSum:
    def __init__(self) -> None:
        self.total = 0

    def __call__(self, n: Num) -> Pair:
        self.total += n.i
        return Pair(n.i, self.total)


def run(tasks: list, collect: str, queue_size: int = 64) -> list:
    out: list = []
    graph = Graph(tasks)
    settings = LoopSettings(queue_size=queue_size)
    loop = PipelineLoop(
        LoopContext(graph, graph.order, settings=settings, collect={collect: out.append})
    )
    loop.run()
    return out


def test_batches_are_full_except_the_last_when_input_ends() -> None:
    BATCHES.clear()
    out = run([numbers, batched], "batched")
    assert [n.i for n in out] == [i * 10 for i in range(20)]
    assert BATCHES == [8, 8, 4]  # max_wait is long: only the end of input flushes the rest


def test_keyed_tasks_get_one_instance_per_key() -> None:
    out = run([numbers, RunningSum], "RunningSum")
    evens = [p.right for p in out if p.left % 2 == 0]
    assert evens[-1] == sum(range(0, 20, 2))


@cv.task
def slow_sink(n: Num) -> None:
    DEPTHS.append(0)


def test_backpressure_bounds_every_queue() -> None:
    graph = Graph([numbers, slow_sink])
    loop = PipelineLoop(LoopContext(graph, graph.order, settings=LoopSettings(queue_size=3)))
    seen = []
    original = loop._run

    def spy(t):  # noqa: ANN001, ANN202
        queues = [len(q) for x in loop.tasks.values() for q in x.inputs.queues.values()]
        seen.append(max(queues, default=0))
        return original(t)

    loop._run = spy  # type: ignore[method-assign]
    loop.run()
    assert len(seen) > 20 and max(seen) <= 3


@dataclass
class Left:
    i: int


@dataclass
class Right:
    i: int


@cv.source
def lefts() -> Iterator[Left]:
    yield from (Left(i) for i in range(5))


@cv.task
def to_right(left: Left) -> Right:
    return Right(left.i * 100)


@cv.task
def join(left: Left, right: Right) -> Pair:
    return Pair(left.i, right.i)


def test_join_takes_one_message_of_each_input_in_order() -> None:
    out = run([lefts, to_right, join], "join")
    assert [(p.left, p.right) for p in out] == [(i, i * 100) for i in range(5)]


@cv.task(on_error="fail")
def explode(n: Num) -> Pair:
    if n.i == 7:
        raise ValueError("bad pixel")
    return Pair(n.i, 0)


@cv.task  # on_error="dead_letter", the default
def flaky(n: Num) -> Pair:
    if n.i in (3, 7):
        raise ValueError(f"bad pixel {n.i}")
    return Pair(n.i, 0)


def test_by_default_an_item_that_raises_is_a_dead_letter_and_the_rest_goes_on() -> None:
    result = cv.run(cv.Graph([numbers, flaky]), backend="inline", collect=["flaky"])
    assert [p.left for p in result.outputs["flaky"]] == [i for i in range(20) if i not in (3, 7)]
    assert [(d.task, d.reason, d.attempts) for d in result.dead_letters] == [
        ("flaky", "raised", 1)
    ] * 2
    assert "bad pixel 3" in result.dead_letters[0].error
    assert "i=3" in result.dead_letters[0].item


def test_bad_error_policies_are_refused() -> None:
    with pytest.raises(cv.ConfigurationError, match="on_error must be one of"):
        cv.task(on_error="ignore")(_id)
    with pytest.raises(cv.ConfigurationError, match="retries must be"):
        cv.task(retries=-1)(_id)
    with pytest.raises(cv.ConfigurationError, match="checkpoint must be"):
        cv.task(checkpoint=5)(_Counter)


def _id(n: Num) -> Num:
    return n


class _Counter:
    def __call__(self, n: Num) -> Num:
        return n


def test_user_errors_name_the_task_and_the_item() -> None:
    with pytest.raises(cv.TaskFailed) as info:
        run([numbers, explode], "explode")
    exc = info.value
    assert exc.task == "explode" and "Num(key='b', i=7)" in exc.item
    assert "bad pixel" in str(exc) and "ValueError" in exc.remote_traceback


@cv.task
def maybe(n: Num) -> Pair | None:
    return Pair(n.i, 0) if n.i % 5 == 0 else None


@cv.task
def forgot(n: Num) -> Pair:
    return None  # type: ignore[return-value]


def test_optional_outputs_and_a_none_that_was_not_declared() -> None:
    assert [p.left for p in run([numbers, maybe], "maybe")] == [0, 5, 10, 15]
    with pytest.raises(cv.TaskFailed, match="returned None"):
        run([numbers, forgot], "forgot")


@cv.task(batch=4)
def wrong_length(items: list[Num]) -> list[Pair]:
    return []


def test_batch_task_must_return_one_result_per_input() -> None:
    with pytest.raises(cv.TaskFailed, match="one result per input"):
        run([numbers, wrong_length], "wrong_length")


@cv.source
def rights_reversed() -> Iterator[Right]:
    yield from (Right(i) for i in (4, 3, 2, 1, 0))


@cv.task(join_on="i")
def match(left: Left, right: Right) -> Pair:
    assert left.i == right.i
    return Pair(left.i, right.i)


def test_join_on_matches_fields_whatever_the_arrival_order() -> None:
    out = run([lefts, rights_reversed, match], "match")
    assert sorted(p.left for p in out) == [0, 1, 2, 3, 4]
    assert all(p.left == p.right for p in out)


@cv.source
def three_rights() -> Iterator[Right]:
    yield from (Right(i) for i in range(3))


@cv.task
def zip_join(left: Left, right: Right) -> Pair:
    return Pair(left.i, right.i)


def test_unmatched_join_inputs_fail_clearly_instead_of_hanging() -> None:
    with pytest.raises(cv.TaskFailed, match="unmatched messages"):
        run([lefts, three_rights, zip_join], "zip_join")


def test_join_on_needs_two_inputs() -> None:
    with pytest.raises(cv.ConfigurationError, match="two or more inputs"):
        cv.task(join_on="i")(_one_input)


def _one_input(left: Left) -> Pair: ...


@dataclass
class Odd:
    i: int


@cv.task
def odd_only(n: Num) -> Odd | None:
    return Odd(n.i) if n.i % 2 else None


@cv.task(batch=4, max_wait=60)
def odd_batches(items: list[Odd]) -> list[Odd]:
    return items


def test_a_partial_last_batch_runs_when_an_inner_task_ends() -> None:
    # 10 odd numbers: batches of 4, 4, then 2 once odd_only (not a source) has finished.
    out = run([numbers, odd_only, odd_batches], "odd_batches")
    assert [o.i for o in out] == list(range(1, 20, 2))


def test_changes_from_the_driver_are_applied_once_and_a_late_source_is_reported() -> None:
    """``runtime.control``: an Attach adds a feed (twice: still one), an EndSource ends a
    source, an Expect sets a gather's count; a source attached after its consumer ended is
    reported to the driver instead of joining."""
    from conveyor.runtime.control import Attach, EndSource, Expect
    from conveyor.runtime.links import Link
    from conveyor.transport.ring import Ring

    late: list[str] = []
    graph = Graph([numbers, batched])
    loop = PipelineLoop(LoopContext(graph, graph.order, links=[], on_late_source=late.append))
    with Ring(1 << 16) as ring:
        link = Link("cam[new]", "batched", "items", 1, 0, ring=ring.name)
        loop._apply(Attach(link))
        loop._apply(Attach(link))  # read again by a replacement: already in effect
        assert len(loop.feeds) == 1 and loop.tasks["batched"].inputs.open["items"] == 1
        loop._apply(EndSource("numbers"))
        assert (
            loop.sources["numbers"].ended and loop.sources["numbers"].next(loop.instruments) is None
        )
        loop._apply(Expect("batched", 3))  # not a gather: nothing to set
        loop.tasks["batched"].done = True
        other = Link("cam[later]", "batched", "items", 2, 0, ring=ring.name + "-x")
        loop._apply(Attach(other))
        assert late == ["cam[later]"] and len(loop.feeds) == 1
        for feed in loop.feeds:
            feed.inlet.reader.close()  # type: ignore[attr-defined]
