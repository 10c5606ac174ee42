"""Statistics while a run goes on: a thread of the parent hands snapshots to observers.

An observer is any callable taking a ``Stats`` (``Dashboard``, ``MetricsServer``, a user's
function); one with a ``close()`` method is closed when the run ends. The thread reads the
shared counter table (``monitor.counters``) every ``period`` seconds: the pipelines never
notice, they only write their rows. After the run, every observer gets the final snapshot
(the one ``RunResult.stats`` holds) before it is closed.

An observer that raises is dropped with a warning on stderr: watching never stops a run.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from conveyor._errors import ConfigurationError
from conveyor.monitor.stats import Stats

Observer = Callable[[Stats], Any]


class Watcher:
    """``with Watcher(read, observers, period):`` around a run; ``finish(final)`` at its end."""

    def __init__(
        self, read: Callable[[], Stats] | None, observers: Sequence[Observer], period: float
    ) -> None:
        if period <= 0:
            raise ConfigurationError(f"expected watch_every > 0 seconds, got {period}")
        for o in observers:
            if not callable(o):
                raise ConfigurationError(f"expected watch callables taking Stats, got {o!r}")
        self.read, self.period = read, period
        self.observers = list(observers)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="conveyor-watch", daemon=True)
        self._lock = threading.Lock()  # the final snapshot never races a periodic one

    def __enter__(self) -> Watcher:
        if self.observers:  # ``run`` refuses observers without statistics (read None)
            self._thread.start()
        return self

    def _watch(self) -> None:
        assert self.read is not None
        while not self._stop.wait(self.period):
            self._tell(self.read())

    def _tell(self, stats: Stats) -> None:
        with self._lock:
            for o in list(self.observers):
                try:
                    o(stats)
                except Exception as exc:  # noqa: BLE001 - a broken observer must not stop a run
                    self.observers.remove(o)
                    print(f"conveyor: watcher {o!r} dropped: {exc!r}", file=sys.stderr)

    def finish(self, final: Stats | None) -> None:
        """Stop the thread; give every observer ``final`` (a finished run's stats)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5 * self.period + 5)
        if final is not None:
            self._tell(final)

    def __exit__(self, *exc: object) -> None:
        self.finish(None)  # idempotent; covers a run that failed before finish()
        for o in self.observers:
            close = getattr(o, "close", None)
            if callable(close):
                close()
