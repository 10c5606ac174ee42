"""Driving a source task: its generator, where it resumes after a restart, and how it learns
which of its items are done.

A source is a generator function, or a class whose instances iterate. In a run that restarts
pipelines, its items are numbered and a replacement skips those its predecessor finished
(``runtime.progress``): a source with a ``resume(n)`` method is told to start at item n, any
other one is iterated past them. A source with an ``acknowledge(n)`` method is told when items
before n are done (a live camera's bridge lets frames go then). The frames an item holds in
the frame store are let go when everything derived from it is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from conveyor.runtime.execute import failed
from conveyor.runtime.frames import frame_holds, releaser
from conveyor.runtime.instrument import Instrument
from conveyor.runtime.lease import Lease, Unit, derive
from conveyor.runtime.progress import DonePrefix, SourceProgress
from conveyor.runtime.task_run import TaskRun


class SourceRun:
    """One source task in its pipeline. ``limit``: items to take at most (a warm-up run)."""

    def __init__(
        self, t: TaskRun, progress: SourceProgress | None = None, limit: int | None = None
    ) -> None:
        self.t, self.progress, self.limit = t, progress, limit
        self.items: Iterator[Any] | None = None
        self.prefix: DonePrefix | None = None  # its finished items, when anyone asks
        self.acknowledge: Callable[[int], None] | None = None

    def next(self, instruments: Instrument) -> Unit | None:
        """The unit of the source's next item, or None when it has ended."""
        t = self.t
        if self.items is None:
            self._start()
            assert self.items is not None
        if self.limit is not None and t.calls >= self.limit:
            return None
        started = time.perf_counter()
        produced = 0  # the call that finds the source exhausted counts no item
        n = t.calls
        try:
            instruments.call_started(t.info, n, ())
            item = next(self.items)
            produced = 1
        except StopIteration:
            return None
        except Exception as exc:
            raise failed(t.spec, None, exc) from exc
        finally:
            spent = time.perf_counter() - started
            t.busy += spent
            instruments.call_ended(t.info, started, spent, produced, n)
        t.calls += 1
        t.items += 1
        held = frame_holds(item)  # the run takes over the source's hold on its frames
        on_done = [releaser(held)] if held else []
        if self.prefix is not None:
            on_done.append(self._marker(n))
        lease = Lease(on_done) if on_done else None
        return Unit([], lease, derive(n, t.tid), None, item)

    def _start(self) -> None:
        made: Any = self.t.spec.construct()  # a generator, or an instance with __iter__
        self.items = iter(made)
        self.acknowledge = getattr(made, "acknowledge", None)
        if self.progress is not None:
            self._resume(getattr(made, "resume", None))
        elif self.acknowledge is not None:
            self.prefix = DonePrefix(0)

    def _resume(self, resume: Callable[[int], None] | None) -> None:
        """Skip the items a predecessor of this pipeline finished."""
        assert self.progress is not None and self.items is not None
        skip = self.progress.get(self.t.name)
        self.prefix = DonePrefix(skip)
        if resume is not None:
            resume(skip)
            self.t.calls += skip
            return
        for _ in range(skip):
            try:
                item = next(self.items)
            except StopIteration:
                break
            releaser(frame_holds(item))()
            self.t.calls += 1

    def _marker(self, n: int) -> Callable[[], None]:
        progress, name, prefix, acknowledge = (
            self.progress,
            self.t.name,
            self.prefix,
            self.acknowledge,
        )
        assert prefix is not None

        def done() -> None:
            upto = prefix.done(n)
            if progress is not None:
                progress.set(name, upto)
            if acknowledge is not None:  # a source that wants to know (backends.bridge)
                acknowledge(upto)

        return done
