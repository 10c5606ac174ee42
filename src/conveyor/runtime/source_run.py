"""Driving a source task: its generator, where it resumes after a restart, and how it learns
which of its items are done.

A source is a generator function, or a class whose instances iterate. In a run that restarts
pipelines, its items are numbered and a replacement skips those its predecessor finished
(``runtime.progress``): a source with a ``resume(n)`` method is told to start at item n, any
other one is iterated past them. A source with an ``acknowledge(n)`` method is told when items
before n are done (a live camera's bridge lets frames go then). A source whose instance has
a ``dropped`` count (items it let go unsent) has it read after each item, the growth reported
to the instruments (statistics). The frames an item holds in the frame store are let go when
everything derived from it is done.

Where a pipeline holds several sources (cameras), each source's iterator runs in a thread of
its own (``_Pump``), reading at most ``READ_AHEAD`` items ahead: a camera waiting for its next
frame never holds up the other cameras of its pipeline, which take their items when they are
there. So does a *live* source (its instance says ``live = True``: a stream that may wait for
a camera, however long), so that its pipeline's other tasks never wait with it, and a source
kept in step (below), which may wait for its siblings. Any other lone source is iterated in
the loop: a thread would cost a switch per item (``bench_pipeline``'s speedup went from 1.65
to 0.78 with every source in a thread). ``resume`` is called before the thread starts;
``acknowledge`` is called from the pipeline's loop while the iterator runs in its thread (a
bridge's only notes the number). A source declared ``waits=False`` (CPU work that never waits)
is iterated in the loop even beside others, the loop's sources taking turns (``turn``: when
each last yielded); ``waits=True`` puts even a lone one in a thread.

A live source may also say ``drop_oldest = True``: when its pipeline is behind, a new item
replaces the oldest one its pipeline has not taken yet instead of waiting for room (a camera
goes on at now; its frames waiting are stale). That happens when its thread has ``READ_AHEAD``
items waiting, and when a frame it writes finds every slot of its camera held (the oldest
waiting item's frame is let go, and the write takes its slot). Each item let go is counted
in its ``dropped`` statistics. Any other source waits (backpressure): files lose nothing.

Sources bound once per camera may keep in step (their instance says ``keep_in_step = True``:
files, which could otherwise run minutes apart in different processes): each reads an item
only within ``progress.LEAD`` items of the slowest sibling's done prefix; one that ended
holds no one back.
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from conveyor.runtime.execute import failed
from conveyor.runtime.frames import frame_holds, on_frame_pressure, releaser
from conveyor.runtime.instrument import Instrument
from conveyor.runtime.lease import Lease, Unit, derive
from conveyor.runtime.policy import TaskState
from conveyor.runtime.progress import DonePrefix, SourceProgress
from conveyor.runtime.task_run import TaskRun
from conveyor.transport.ring import RingWriter

READ_AHEAD = 2  # items a source's thread reads before its pipeline takes them
STEP_POLL = 0.005  # seconds between two looks at the siblings of a source kept in step


class SourceRun:
    """One source task in its pipeline. ``limit``: items to take at most (a warm-up run);
    ``wake``: wakes the pipeline's loop when an item has come."""

    def __init__(
        self,
        t: TaskRun,
        progress: SourceProgress | None = None,
        limit: int | None = None,
        wake: Callable[[], None] | None = None,
        threaded: bool = False,
        siblings: list[str] | None = None,
    ) -> None:
        self.t, self.progress, self.limit = t, progress, limit
        self.threaded = threaded
        self.siblings = siblings or []  # the other sources of its merge (cameras)
        self.wake = wake or (lambda: None)
        self.items: Iterator[Any] | None = None
        self.prefix: DonePrefix | None = None  # its finished items, when anyone asks
        self.acknowledge: Callable[[int], None] | None = None
        self.pump: _Pump | None = None
        self.counts_drops: Any = None  # the instance, when it has a ``dropped`` count
        self.in_step = False  # it keeps in step with its siblings (see ``_steps``)
        self.dropped = 0  # of that count, what was reported
        self.ended = False  # removed from the run: it yields nothing more (``end``)
        self.turn = -math.inf  # when it last yielded (monotonic): in-loop sources take turns

    def state(self, now: float, blocked: set[RingWriter]) -> TaskState:
        """The policy's view: the task's, with whether its next item has come, and when (and,
        read in the loop, when it last had its turn: sources take turns)."""
        state = self.t.state(now, blocked, self.waiting(), self.oldest(), self.turn)
        if self.ended and state.outputs_full and not (self.pump and self.pump.queue):
            # Ended, nothing left to send: its turn closes it, whatever room its outlets have.
            return dataclasses.replace(state, outputs_full=False)
        return state

    def waiting(self) -> bool:
        """Started, and its next item (or its end) has not come yet: nothing to take now."""
        return self.pump is not None and not self.pump.ready() and not self.ended

    def end(self) -> None:
        """End the source now (its camera was removed from the run): what it yielded goes on
        through the pipelines (its thread's read-ahead too); an item its thread was reading
        when the end came is let go; then its turn closes it, and its consumers learn it
        ended as at a file's end."""
        self.ended = True
        if self.pump is not None:
            self.pump.stop()  # it reads no more; what it read is still taken
        if self.progress is not None:
            self.progress.free(self.t.name, True)  # it holds no sibling back any more

    def oldest(self) -> float | None:
        """When the item to take next came (monotonic seconds), if one is there."""
        return self.pump.oldest() if self.pump is not None else None

    def stop(self) -> None:
        if self.pump is not None:
            self.pump.stop()

    def next(self, instruments: Instrument) -> Unit | None:
        """The unit of the source's next item, or None when it has ended. With its own
        thread, called only when an item (or the end) is there: it does not wait."""
        t = self.t
        if self.ended and (self.pump is None or not self.pump.queue):
            return None
        if self.items is None:
            self.start()
            assert self.items is not None
        if self.limit is not None and t.calls >= self.limit:
            return None
        started, spent = time.perf_counter(), 0.0
        produced = 0  # the call that finds the source exhausted counts no item
        n = t.calls
        try:
            instruments.call_started(t.info, n, ())
            if self.pump is not None:
                item, started, spent = self.pump.take()
            else:
                item = next(self.items)
                spent = time.perf_counter() - started
            produced = 1
        except StopIteration:
            if self.in_step and self.progress is not None:
                self.progress.free(t.name, True)  # ended: it holds no sibling back
            return None
        except Exception as exc:
            raise failed(t.spec, None, exc) from exc
        finally:
            t.busy += spent
            instruments.call_ended(t.info, started, spent, produced, n)
        t.calls += 1
        t.items += 1
        self.turn = time.monotonic()
        dropped = self._dropped()
        if dropped > self.dropped:
            instruments.dropped(t.info, dropped - self.dropped)
            self.dropped = dropped
        held = frame_holds(item)  # the run takes over the source's hold on its frames
        on_done = [releaser(held)] if held else []
        if self.prefix is not None:
            on_done.append(self._marker(n))
        lease = Lease(on_done) if on_done else None
        return Unit([], lease, derive(n, t.tid), None, item)

    def _dropped(self) -> int:
        """Items let go so far: by the source itself, and by its thread (``drop_oldest``)."""
        own = int(self.counts_drops.dropped) if self.counts_drops is not None else 0
        return own + (self.pump.dropped if self.pump is not None else 0)

    def start(self) -> None:
        """Build the source (with its arguments), resume it, start its thread."""
        if self.items is not None:
            return
        made: Any = self.t.spec.construct()  # a generator, or an instance with __iter__
        self.items = iter(made)
        self.acknowledge = getattr(made, "acknowledge", None)
        if hasattr(made, "dropped"):
            self.counts_drops = made
        if self.progress is not None:
            self._resume(getattr(made, "resume", None))
        elif self.acknowledge is not None:
            self.prefix = DonePrefix(0)
        steps = self._steps(bool(getattr(made, "keep_in_step", False)))
        live = bool(getattr(made, "live", False))
        waits = self.t.spec.waits
        threaded = self.threaded if waits is None else waits
        if threaded or steps is not None or live:
            left = None if self.limit is None else max(0, self.limit - self.t.calls)
            drop = live and bool(getattr(made, "drop_oldest", False))
            self.pump = _Pump(self.t.name, self.items, self.wake, left, steps, drop)

    def _steps(self, keep_in_step: bool) -> _Steps | None:
        """How the source keeps in step with its siblings (None: it does not). Siblings are
        held to its done prefix (an item is done once its pipeline has passed on everything
        derived from it: a bound on reads would let a camera's frames run ahead of a busier
        pipeline's) until it ends; one that keeps no step says at once that it is free, so
        that it never holds its siblings back."""
        progress, name = self.progress, self.t.name
        if progress is None:
            return None
        self.in_step = keep_in_step and bool(self.siblings)
        progress.free(name, not self.in_step)
        if not self.in_step:
            return None
        siblings = self.siblings
        return _Steps(self.t.calls, lambda k: progress.in_step(k, siblings))

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


@dataclass(frozen=True)
class _Steps:
    """A source kept in step: its next item's number, and whether it may read item k now."""

    first: int
    may_read: Callable[[int], bool]


class _Pump:
    """A source's iterator, run in a thread: up to ``READ_AHEAD`` items wait for the loop;
    with ``steps``, no item is read before the source's siblings are near enough; with
    ``drop_oldest``, a new item replaces the oldest waiting one rather than wait for room."""

    def __init__(
        self,
        name: str,
        items: Iterator[Any],
        wake: Callable[[], None],
        limit: int | None,
        steps: _Steps | None = None,
        drop_oldest: bool = False,
    ) -> None:
        self.items, self.wake, self.limit, self.steps = items, wake, limit, steps
        self.drop_oldest = drop_oldest
        self.dropped = 0  # items let go unsent (written by the thread only)
        self.cond = threading.Condition()
        self.queue: deque[tuple[Any, float, float, float]] = deque()
        self.end: BaseException | None = None  # StopIteration, or what the iterator raised
        self.stopping = False
        # The thread sees the run's context (its frame store), without the loop's relief for
        # a full store: that runs the loop's own code, which only the loop's thread may run.
        # A source that drops its oldest item has a relief of its own: the item goes.
        context = contextvars.copy_context()
        context.run(on_frame_pressure, self._let_oldest_go if drop_oldest else None)
        self.thread = threading.Thread(
            target=context.run, args=(self._run,), name=f"conveyor-source-{name}", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        end: BaseException = StopIteration()
        steps = self.steps
        k = steps.first if steps is not None else 0
        try:
            left = self.limit
            while left is None or left > 0:
                with self.cond:
                    while (
                        len(self.queue) >= READ_AHEAD and not self.drop_oldest and not self.stopping
                    ):
                        self.cond.wait()
                    while steps is not None and not steps.may_read(k) and not self.stopping:
                        self.cond.wait(STEP_POLL)  # siblings are in other processes: look
                    if self.stopping:
                        return
                started = time.perf_counter()
                item = next(self.items)
                spent = time.perf_counter() - started
                k += 1
                with self.cond:
                    if self.stopping:  # ended while it read: nobody will take the item
                        releaser(frame_holds(item))()
                        return
                    if len(self.queue) >= READ_AHEAD:  # drop_oldest: no room, the oldest goes
                        self._drop_locked()
                    self.queue.append((item, started, spent, time.monotonic()))
                    self.cond.notify_all()
                self.wake()
                left = None if left is None else left - 1
        except StopIteration:
            pass
        except BaseException as exc:  # noqa: BLE001 - the loop raises it as the task's failure
            end = exc
        with self.cond:
            self.end = end
            self.cond.notify_all()
        self.wake()

    def _let_oldest_go(self) -> None:
        """A frame write found its camera's slots all held: let the oldest waiting item go
        (its slots with it). Runs in the source's thread, inside the write."""
        with self.cond:
            if self.queue:
                self._drop_locked()

    def _drop_locked(self) -> None:
        item = self.queue.popleft()[0]
        releaser(frame_holds(item))()
        self.dropped += 1

    def ready(self) -> bool:
        return bool(self.queue) or self.end is not None

    def oldest(self) -> float | None:
        queue = self.queue
        return queue[0][3] if queue else None

    def take(self) -> tuple[Any, float, float]:
        """The next item with when its read started and how long it took; raises the end.
        Waits for it if it has not come (the loop asks only once it has)."""
        with self.cond:
            self.cond.wait_for(lambda: bool(self.queue) or self.end is not None)
            if self.queue:
                item, started, spent, _ = self.queue.popleft()
                self.cond.notify_all()
                return item, started, spent
            end = self.end
        assert end is not None
        raise end

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
