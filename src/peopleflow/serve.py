"""``peopleflow serve``: a store's cameras -> the conveyor graph -> results in a database, live.

The pipeline's per-instant people reach this process as they come (``conveyor.run``'s
``on_output``) and go on a queue to one writer thread, which feeds the ``Recorder`` and writes
each batch it gives in one transaction (``peopleflow.database``). The writer owns all the
state, and signals reach only the main thread, so a signal never lands mid-update:

- **SIGTERM or SIGINT**: the pipeline stops; the writer takes what is queued, makes everyone
  final, writes the last batch and the service exits 0. A second signal stops at once: the
  transaction in progress is rolled back by the database, so nothing is half-written.
- **Killed** (SIGKILL, power): the database holds every batch up to the last, with the
  recorder's state. Started again, file cameras resume after the last instant written (a
  seek: nothing is decoded twice), and nothing written is written again. Live cameras resume
  at now, and the time the service was down is a gap for each of them.
- **File cameras end**: the service writes its last batch and exits, as on SIGTERM.

Times: a file camera's frames are timed from the store's origin (``--start``, else the first
start's clock, kept in the database); a live camera's by the wall clock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import conveyor as cv
from peopleflow.analytics import WINDOW_SECONDS
from peopleflow.app import Prepared, prepare
from peopleflow.camera_changes import LiveCameras, camera_changes
from peopleflow.config import ConfigError, StoreConfig, load_config
from peopleflow.coverage import Coverage
from peopleflow.database import DatabaseError, ResultsDB, plan_json
from peopleflow.live import LiveView
from peopleflow.recorder import Recorder, RecorderSettings
from peopleflow.web import WebOptions, WebServer, create_app
from peopleflow.webapi import StoreData

log = logging.getLogger("peopleflow")
# Seconds of file video read again on a resume, and not written again: the trackers start
# with the people in view (ByteTrack confirms a new track over a few frames) and remember who
# left view lately (the live tracker's re-identification window, 20 s at most).
WARM_UP = 25.0


@dataclass(frozen=True)
class ServeOptions:
    db: str | None = None  # default: an SQLite file beside the store's configuration
    backend: cv.Backend = "local"
    workers: int | None = None
    detector: str = "auto"
    progress: bool = True
    start: float | None = None  # epoch seconds of the files' time 0, on the first start
    window: int = WINDOW_SECONDS
    watch: Sequence[Callable[[cv.Stats], Any]] = ()
    web: WebOptions | None = WebOptions()  # the store's page (None: no page)
    calibrate: bool = False  # the page's /calibrate (cameras' frames sent to it; saving: token)


@dataclass(frozen=True)
class ServeSummary:
    db: str
    store: str
    batches: int  # written by this run of the service
    people: int  # made final (kept) by this run
    stopped: bool  # by a signal, not because the cameras ended
    resumed: bool  # the database had this store already
    elapsed: float


def default_db(config: str | Path) -> str:
    """``sqlite:///`` a file beside the configuration: ``store.toml`` -> ``store.sqlite``."""
    return f"sqlite:///{Path(config).resolve().with_suffix('.sqlite')}"


class Reload(BaseException):
    """SIGHUP, or a calibration saved on the page: the service reads its store file again."""


def serve(config: str | Path, options: ServeOptions = ServeOptions()) -> ServeSummary:
    """Run the store until its cameras end or a signal comes; results go to the database.
    SIGHUP (or a calibration saved on the page) reads the store file again and goes on: what
    is held is written as on a kill, and the run starts again from it with the new file."""
    url = options.db or default_db(config)
    started = time.monotonic()
    batches = people = reloads = 0
    resumed: bool | None = None
    while True:
        outcome = _serve_once(config, url, options, reloads)
        batches, people = batches + outcome.batches, people + outcome.people
        resumed = outcome.resumed if resumed is None else resumed
        if not outcome.reload:
            break
        reloads += 1
        if options.progress:
            print("peopleflow serve: reading the store file again", flush=True)
    cfg = load_config(config, check_sources=False)
    elapsed = time.monotonic() - started
    return ServeSummary(url, cfg.name, batches, people, outcome.stopped, resumed, elapsed)


@dataclass(frozen=True)
class _Outcome:
    batches: int
    people: int
    stopped: bool  # by SIGTERM or SIGINT
    reload: bool  # by SIGHUP: go on with the store file read again
    resumed: bool


def _serve_once(config: str | Path, url: str, options: ServeOptions, reloads: int) -> _Outcome:
    cfg = load_config(config)
    db = ResultsDB.open(url)
    try:
        live = any(c.is_stream for c in cfg.cameras)
        first = options.start
        if first is None:
            first = math.floor(time.time() / options.window) * options.window
        plan = plan_json(cfg.plan, cfg.min_visit)
        resume = db.resume(cfg.name, first, plan)
        start_seconds = 0.0
        if resume.position is not None and not live:
            # The trackers warm up on a few instants already written (not written again).
            start_seconds = max(0.0, resume.position - resume.origin - WARM_UP)
        clock = time.time() if live else None
        prepared = prepare(
            config,
            None,
            options.detector,
            options.progress,
            options.watch,
            start_seconds,
            clock_origin=clock,
            retries=None,  # a live service waits for its cameras, however long they are away
        )
        settings = recorder_settings(cfg, prepared.coverage, options.window)
        recorder = Recorder.restore(settings, resume.state) if resume.state else Recorder(settings)
        origin = clock if clock is not None else resume.origin
        # Live cameras: one that comes later than the first has a gap from the first's first
        # frame; after a restart the recorder knows each camera's last frame, so the time the
        # service was down is a gap.
        expected = [c.name for c in cfg.cameras] if clock is not None else []
        live_view = LiveView()
        writer = Writer(db, cfg.name, recorder, origin, expected, live_view)
        if options.progress and not reloads:
            how = "resuming" if resume.position is not None else "starting"
            print(f"peopleflow serve: {how} {cfg.name!r}, results in {url}", flush=True)
        stopped = reload = False
        page = None
        if options.web is not None:
            app = create_app(
                StoreData(db, cfg.name, live_view),
                options.web.token,
                Path(config) if options.calibrate else None,
                on_saved=_ask_reload,
            )
            page = WebServer(app, options.web)
            address = page.start()
            if not reloads:
                print(f"peopleflow serve: the store's page is at {address}", flush=True)
        with writer, _signals_interrupt(), _stopping(page):
            try:
                if options.backend == "local":
                    _run_changing(config, prepared, options, writer, live_view)
                else:
                    cv.run(
                        prepared.graph,
                        backend=options.backend,
                        workers=options.workers,
                        cameras=prepared.specs,
                        on_output={"Associate": writer.put},
                        watch=[*prepared.watch, live_view.watch],
                    )
            except KeyboardInterrupt:
                stopped = True
                if options.progress:
                    print("peopleflow serve: stopping: writing the last results", flush=True)
            except Reload:
                reload = True
                writer.everyone_final = False  # held, as on a kill: the next run goes on
        return _Outcome(writer.batches, writer.people, stopped, reload, resume.position is not None)
    finally:
        db.close()


def _run_changing(
    config: str | Path,
    prepared: Prepared,
    options: ServeOptions,
    writer: Writer,
    live_view: LiveView,
) -> None:
    """The store's run, started (local backend) until its cameras end. A SIGHUP after which
    only cameras changed in the store file adds and removes them while the run goes on
    (``peopleflow.camera_changes``); any other change raises ``Reload`` (the run starts
    again with the new file)."""
    run = cv.start(
        prepared.graph,
        workers=options.workers,
        cameras=prepared.specs,
        on_output={"Associate": writer.put},
        watch=[*prepared.watch, live_view.watch],
    )
    cameras = LiveCameras(run, prepared)
    try:
        again = False  # a SIGHUP came while cameras were being changed
        while True:
            if not again:
                try:
                    run.wait()
                    return
                except Reload:
                    pass
            with _HUP.holding():
                if not _change_cameras(config, cameras, options.progress, writer):
                    return  # its sources ended meanwhile: the run is over
            again = _HUP.take_missed()
    finally:
        if run.running:
            run.cancel()
            with contextlib.suppress(cv.RunStopped):
                run.wait()


def _change_cameras(
    config: str | Path, cameras: LiveCameras, progress: bool, writer: Writer
) -> bool:
    """Read the store file again and add and remove the cameras it changed in the running
    run; ``Reload`` when more than cameras changed; False when the run ended meanwhile."""
    try:
        new = load_config(config)
    except ConfigError as exc:
        log.error("peopleflow serve: the store file is not read again: %s", exc)
        return True
    changes = camera_changes(cameras.cfg, new)
    if changes is None:  # more than cameras: the run starts again with the file
        raise Reload("the store file changed")
    if not changes:
        return True
    if progress:
        print(f"peopleflow serve: cameras changed: {changes.describe()}", flush=True)
    try:
        coverage = cameras.apply(new, changes, writer.video_seconds)
    except cv.RunStopped:
        return False
    writer.set_coverage(coverage)
    return True


def recorder_settings(cfg: StoreConfig, coverage: Coverage, window: int) -> RecorderSettings:
    """The recorder of ``cfg``'s store: its plan, identities and visit rule, instants as often
    as its fastest camera samples."""
    step = 1.0 / max(c.fps for c in cfg.cameras)
    relinked = cfg.identities == "relinked"
    return RecorderSettings(
        cfg.plan, coverage, step, relinked=relinked, min_visit=cfg.min_visit, window=window
    )


def record_run(
    instants: Sequence[Any],
    cfg: StoreConfig,
    coverage: Coverage,
    url: str,
    origin: float,
    window: int = WINDOW_SECONDS,
) -> int:
    """Write a finished run's per-instant people (``RunSummary.instants``) to a results
    database, as the live service would have, with the run's time 0 at ``origin``; returns
    the batches written. (The demo does this, to show its run on the store's page.)"""
    db = ResultsDB.open(url)
    try:
        plan = plan_json(cfg.plan, cfg.min_visit)
        resume = db.resume(cfg.name, origin, plan)
        if resume.batch:
            raise DatabaseError(f"{url} already holds results of {cfg.name!r}")
        settings = recorder_settings(cfg, coverage, window)
        writer = Writer(db, cfg.name, Recorder(settings), origin, [])
        with writer:
            for instant in sorted(instants, key=lambda i: float(i.ts)):
                writer.put(instant)
        return writer.batches
    finally:
        db.close()


@dataclass(frozen=True)
class _NewCoverage:
    """On the writer's queue: the cameras changed, and with them where the floor is seen."""

    coverage: Coverage


class Writer:
    """The one thread that feeds the recorder and writes its batches (see the module)."""

    def __init__(
        self,
        db: ResultsDB,
        store: str,
        recorder: Recorder,
        origin: float,
        expected: list[str],
        live: LiveView | None = None,
    ) -> None:
        self.db, self.store, self.recorder, self.origin = db, store, recorder, origin
        self.expected = expected  # cameras whose absence from the first frame on is a gap
        self.live = live  # what the page shows as "now"
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="peopleflow-writer", daemon=True)
        self.error: BaseException | None = None
        self.batches = self.people = 0
        self.everyone_final = True  # at the end: False when the service goes on (a reload)
        self.latest = 0.0  # the video time of the newest instant that came (seconds)

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        """Finish: what is queued, then everyone final and the last batch. A second signal
        while this waits leaves at once (the daemon thread's transaction is rolled back)."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and kind is None:
            raise DatabaseError(f"writing results failed: {self.error}") from self.error

    def put(self, instant: Any) -> None:
        """An instant of the pipeline's people (called by conveyor as they come)."""
        if self.error is not None:
            raise DatabaseError(f"writing results failed: {self.error}") from self.error
        self.latest = max(self.latest, float(instant.ts))
        self.queue.put(instant)

    def video_seconds(self) -> float:
        """Where the video is: the newest instant's time (a file camera added starts there)."""
        return self.latest

    def set_coverage(self, coverage: Coverage) -> None:
        """The cameras changed: the recorder judges the next instants with their coverage."""
        self.queue.put(_NewCoverage(coverage))

    def _run(self) -> None:
        try:
            while (instant := self.queue.get()) is not None:
                if isinstance(instant, _NewCoverage):
                    settings = dataclasses.replace(
                        self.recorder.settings, coverage=instant.coverage
                    )
                    self.recorder.settings = settings
                    continue
                self._add(instant)
            last = self.recorder.finish() if self.everyone_final else self.recorder.checkpoint()
            self._write(last)
        except BaseException as exc:  # reported to the main thread by put() and __exit__
            self.error = exc
            log.error("peopleflow serve: writing results failed: %s", exc)

    def _add(self, instant: Any) -> None:
        t = self.origin + float(instant.ts)
        last = self.recorder.position
        if last is not None and t <= last + 1e-6:  # held before a restart: warm-up
            self.recorder.warm(t, instant.ids, instant.xy)
            return
        if self.expected:
            self.recorder.expect(self.expected, t)
            self.expected = []
        if self.live is not None:
            self.live.saw(t, instant.ids, instant.xy, list(instant.camera_names))
        batch = self.recorder.add(
            t,
            instant.ids,
            instant.xy,
            instant.looks,
            list(instant.camera_names),
            dict(instant.health),
            float(instant.captured),
        )
        if batch is not None:
            self._write(batch)

    def _write(self, batch: Any) -> None:
        self.db.write(self.store, batch)
        self.batches += 1
        self.people += batch.people


@contextmanager
def _stopping(page: WebServer | None) -> Iterator[None]:
    try:
        yield
    finally:
        if page is not None:
            page.stop()


class _HeldReloads:
    """While cameras are being changed, a SIGHUP does not interrupt: it is noted, and the file
    is read again once they are (``_run_changing``)."""

    def __init__(self) -> None:
        self.held = self.missed = False

    @contextmanager
    def holding(self) -> Iterator[None]:
        self.held = True
        try:
            yield
        finally:
            self.held = False

    def take_missed(self) -> bool:
        missed, self.missed = self.missed, False
        return missed


_HUP = _HeldReloads()


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM (what systemd and ``docker stop`` send) acts as Ctrl-C does, and SIGHUP reads
    the store file again, while serving."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def reload(signum: int, _frame: FrameType | None) -> None:
        if _HUP.held:  # cameras are being changed: read the file again once they are
            _HUP.missed = True
            return
        raise Reload(f"signal {signum}")

    before = signal.signal(signal.SIGTERM, interrupt)
    hup = signal.signal(signal.SIGHUP, reload)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGHUP, hup)


def _ask_reload() -> None:
    """A calibration or zones saved on the page: the service reads its store file again."""
    os.kill(os.getpid(), signal.SIGHUP)
