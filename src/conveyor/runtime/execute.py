"""Calling a task's code on a call's units: its instance (one per key for a stateful task),
its ``on_error`` policy (retry, dead letter, fail), the instruments around each call, and the
check that a batch task returned one result per input.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any, cast

from conveyor._errors import TaskFailed
from conveyor.runtime.instrument import Instrument
from conveyor.runtime.lease import DROPPED, Unit
from conveyor.runtime.task_run import TaskRun
from conveyor.spec import DeadLetter
from conveyor.task import TaskSpec


class Executor:
    """Runs calls of a pipeline's tasks; the items given up on go to ``on_dead_letter``."""

    def __init__(
        self, instruments: Instrument, on_dead_letter: Callable[[DeadLetter], None]
    ) -> None:
        self.instruments = instruments
        self.on_dead_letter = on_dead_letter

    def compute_new(
        self, t: TaskRun, units: list[Unit], quarantine: frozenset[tuple[str, int]]
    ) -> None:
        """Compute the units that need it: not a quarantined item's (the supervisor recorded
        it as a dead letter), not one the restored checkpoint covers (its output is kept)."""
        replay = t.saver.replay if t.saver is not None else {}
        todo = []
        for unit in units:
            if quarantine and any((t.name, e.origin) in quarantine for e in unit.entries):
                unit.result = DROPPED
            elif unit.origin in replay:
                unit.result = replay.pop(unit.origin)
            else:
                todo.append(unit)
        if todo:
            self.compute(t, todo)

    def compute(self, t: TaskRun, units: list[Unit]) -> None:
        """Set each unit's result, applying the task's ``on_error`` policy to what it raises.
        A batch that raised is run again item by item, to find the items at fault."""
        spec = t.spec
        args = t.inputs.args([e.value for u in units for e in u.entries])
        attempts = 1 + (spec.retries if spec.on_error == "retry" else 0)
        for _ in range(attempts):
            try:
                results = self.call(t, units, args)
                break
            except TaskFailed as exc:
                if spec.on_error == "fail":
                    raise
                error = exc
        else:
            if len(units) > 1:
                for unit in units:
                    self.compute(t, [unit])
                return
            self._give_up(t, units[0], error, attempts)
            return
        if not spec.batched:
            units[0].result = results
            return
        if not isinstance(results, list) or len(results) != len(units):
            raise TaskFailed(
                f"batch task {spec.name!r} must return a list with one result per input: "
                f"got {describe(results)} for {len(units)} inputs",
                task=spec.name,
            )
        for unit, result in zip(units, results, strict=True):
            unit.result = result

    def call(self, t: TaskRun, units: list[Unit], args: tuple[Any, ...]) -> Any:
        """One call of the task's code, watched by the instruments."""
        spec = t.spec
        try:
            fn = self._target(t, units)
            origins = [e.origin for u in units for e in u.entries]
            started = time.perf_counter()
            try:
                self.instruments.call_started(t.info, t.calls, origins)
                t.calls += 1
                t.items += len(units)
                started = time.perf_counter()
                return fn(*args)
            finally:
                spent = time.perf_counter() - started
                t.busy += spent
                first = units[0].origin if units else None
                self.instruments.call_ended(t.info, started, spent, len(units), first)
        except TaskFailed:
            raise
        except Exception as exc:
            raise failed(spec, args[0] if len(args) == 1 else args, exc) from exc

    def _target(self, t: TaskRun, units: list[Unit]) -> Callable[..., Any]:
        spec = t.spec
        if not spec.stateful:
            return t.function
        key = getattr(units[0].entries[0].value, spec.key) if spec.key else None
        instance = t.instances.get(key)
        if instance is None:
            instance = t.instances[key] = spec.construct()
        return cast(Callable[..., Any], instance)

    def _give_up(self, t: TaskRun, unit: Unit, error: TaskFailed, attempts: int) -> None:
        unit.result = DROPPED
        letter = DeadLetter(
            task=t.spec.name,
            origin=unit.entries[0].origin,
            item=error.item,
            reason="raised",
            error=str(error),
            traceback=error.remote_traceback,
            attempts=attempts,
        )
        self.instruments.dead(t.info)
        self.on_dead_letter(letter)


def failed(spec: TaskSpec, item: Any, exc: BaseException) -> TaskFailed:
    """The error a task's exception becomes: the task, the item and the traceback."""
    text = "".join(traceback.format_exception(exc))
    return TaskFailed(
        f"task {spec.name!r} raised {type(exc).__name__}: {exc} (item: {describe(item)})",
        task=spec.name,
        item=describe(item),
        remote_traceback=text,
    )


def describe(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_may_skip(spec: TaskSpec) -> None:
    """A task returned None: refused unless it is declared to return ``T | None`` (or a sink)."""
    if not (spec.optional_output or spec.kind == "sink"):
        raise TaskFailed(
            f"task {spec.name!r} returned None but is declared to return "
            f"{spec.output.__name__ if spec.output else '?'}; annotate it "
            "'-> T | None' if it may produce nothing",
            task=spec.name,
        )
