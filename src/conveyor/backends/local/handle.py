"""A run that goes on while its caller does other things: ``conveyor.start`` returns a
``RunHandle``. The run's supervisor works in a thread of this process; the handle asks it for
changes (cameras added and removed, ``backends.local.changes``) and waits for the end."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

from conveyor._errors import RunStopped
from conveyor.backends.base import RunResult
from conveyor.backends.local.changes import RunChanges
from conveyor.backends.local.supervisor import Supervisor, sigterm_interrupts
from conveyor.spec import CameraSpec

CHANGE_TIMEOUT = 60.0  # seconds a change may take (the supervisor makes it between two waits)

Start = Callable[[threading.Event, Callable[[Supervisor], None]], RunResult]


class RunHandle:
    """A started run (``conveyor.start``): add and remove sources while it goes on, stop it,
    wait for its result.

    ``add_source(source, cameras=...)`` starts a new source (a camera) in a pipeline of its
    own, feeding the tasks that take its type; ``remove_source(name)`` ends one: what it
    already yielded is finished, not lost. Neither touches any other camera's work.
    ``stop()`` ends every source the same way and returns the result once all is done;
    ``cancel()`` stops the pipelines at once (``wait`` then raises ``RunStopped``). As a
    context manager, leaving the block stops the run (cancels it on an exception)."""

    def __init__(self, start: Start) -> None:
        self._cancel = threading.Event()
        self._ready = threading.Event()
        self._supervisor: Supervisor | None = None
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        # Waited on instead of the thread: a signal handler that raises while Thread.join
        # waits (SIGHUP, SIGTERM) marks the thread stopped though it runs on (bpo-45274).
        self._finished = threading.Event()
        self._thread = threading.Thread(
            target=self._main, args=(start,), name="conveyor-run", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._supervisor is None and self._error is not None:
            self._finished.wait()
            raise self._error  # it failed before any pipeline started: a bad graph or option

    def _main(self, start: Start) -> None:
        try:
            self._result = start(self._cancel, self._started)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread by wait()
            self._error = exc
        finally:
            self._finished.set()
            self._ready.set()

    def _started(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor
        self._ready.set()

    # -- while it runs ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return not self._finished.is_set()

    def add_source(self, source: object, cameras: Sequence[CameraSpec] = ()) -> str:
        """Start ``source`` (a bound source with a name of its own, never used before in this
        run) feeding the run's tasks that take its type; ``cameras``: the frame store of its
        cameras, when it writes frames for cameras the run was not started with. Returns its
        name once its pipeline is starting."""
        return str(self._ask(lambda changes: changes.add(source, cameras)))

    def remove_source(self, name: str) -> None:
        """End source ``name``: what it yielded is finished downstream; it yields no more."""
        self._ask(lambda changes: changes.remove(name))

    def sources(self) -> list[str]:
        """The sources in the run now."""
        return list(self._ask(lambda changes: changes.sources()))

    def _ask(self, change: Callable[[RunChanges], Any]) -> Any:
        supervisor = self._supervisor
        if supervisor is None or not self.running:
            raise RunStopped("the run has ended: it takes no more changes")
        done = supervisor.ask(change)
        waited = 0.0
        while True:
            try:
                return done.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                waited += 0.1
                if not self.running:  # ended before it got to the change
                    raise RunStopped("the run ended before the change was made") from None
                if waited > CHANGE_TIMEOUT:
                    raise

    # -- the end ---------------------------------------------------------------------------

    def stop(self, timeout: float | None = None) -> RunResult:
        """End every source (what is in flight is finished) and wait for the result."""
        if self.running:
            with contextlib.suppress(RunStopped):  # it ended by itself meanwhile
                self._ask(_remove_all)
        return self.wait(timeout)

    def cancel(self) -> None:
        """Stop the pipelines now, without finishing what is in flight."""
        self._cancel.set()
        if self._supervisor is not None:
            self._supervisor.bell.ring()

    def wait(self, timeout: float | None = None) -> RunResult:
        """The run's result once it has ended (its sources all ended, or were removed); raises
        what stopped it. Ctrl-C or SIGTERM while waiting cancels the run. ``TimeoutError`` if
        ``timeout`` seconds pass first (the run goes on)."""
        try:
            with sigterm_interrupts():
                self._finished.wait(timeout)
        except KeyboardInterrupt:
            self.cancel()
            self._finished.wait()
            raise
        if self.running:
            raise TimeoutError(f"the run goes on after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def __enter__(self) -> RunHandle:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.cancel()
            self._finished.wait()
        elif self.running:
            self.stop()


def _remove_all(changes: RunChanges) -> None:
    for name in changes.sources():
        changes.remove(name)
