"""Camera sources: video files and RTSP streams through OpenCV (FFmpeg), sampled at a set rate.

``CameraReader`` yields ``(index, seconds, frame)`` for one camera at the configured fps:

- a **file** is read as fast as the pipeline takes it; frames between samples are skipped
  (decoded but not sent), so a 25 fps file sampled at 5 fps sends every fifth frame. With
  ``realtime=True`` it is read as a live camera would send it: a sample is sent when its time
  comes (the first seconds set the clock: the pipeline is loading its models), and one the
  pipeline is over a period late for is dropped (decoded, not sent; counted in
  ``stats.behind``), as a stream's would be;
- a **stream** is live: when the pipeline falls behind real time, frames are grabbed and
  dropped (counted in ``stats.behind``) so that it works on the newest frame, not a queue of
  stale ones; when the stream breaks, the reader reconnects with a growing pause
  (``stats.reconnects``) and gives up after ``retries`` failures in a row.

``interleave`` merges several cameras into one time-ordered stream and keeps going when one
camera fails: the failure is reported and the other cameras go on.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger("peopleflow")
ROOM_PER_CAMERA = 2  # a live camera's frames waiting for the pipeline, at most
MAX_BACKOFF = 10.0  # seconds: the longest pause between two reconnection attempts
REALTIME_WARMUP = 3.0  # seconds of video a realtime file may be late for while a run starts


class SourceError(RuntimeError):
    """A camera cannot be opened or read; the message says which and why."""


@dataclass
class SourceStats:
    frames: int = 0  # sent on
    skipped: int = 0  # between samples (files)
    behind: int = 0  # dropped to catch up with real time (streams)
    reconnects: int = 0
    failed: str = ""  # why the camera stopped early, if it did


# FFmpeg probes a stream for 5 s before the first frame by default. A camera's stream is one
# known video track whose parameters RTSP announces (the SDP), so 0.2 s and 64 KB find it: a
# reconnection then takes ~1 s instead of ~5.5 s (measured on a 2 fps stream, where the probe
# waits longest). RTP goes over the RTSP connection (TCP), not UDP: a reader that a busy
# machine schedules late loses UDP packets once the socket's buffer is full, and a camera
# whose frames arrive broken looks to FFmpeg like a stream that stopped (what most camera
# recorders default to, for the same reason). OpenCV reads its FFmpeg options only from this
# variable; a value already set wins.
STREAM_PROBE = "rtsp_transport;tcp|analyzeduration;200000|probesize;65536"


def _open(source: str, timeout_ms: int) -> Any:  # a cv2.VideoCapture
    import cv2

    if "://" in source:
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", STREAM_PROBE)

    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        timeout_ms,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        timeout_ms,
    ]
    cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        what = "stream" if "://" in source else "video file"
        raise SourceError(
            f"cannot open {what} {source}"
            + (
                " (is the address right and the camera reachable?)"
                if "://" in source
                else " (does it exist, and is it a video OpenCV can decode?)"
            )
        )
    return cap


class CameraReader:
    """Frames of one camera at ``fps`` samples per second (see the module's docstring)."""

    def __init__(
        self,
        name: str,
        source: str,
        fps: float,
        retries: int | None = 5,
        timeout: float = 5.0,
        max_seconds: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        start_seconds: float = 0.0,
        clock_origin: float | None = None,
        realtime: bool = False,
    ) -> None:
        self.name, self.source, self.fps = name, source, fps
        self.realtime = realtime  # files: at camera pace, late samples dropped (benchmarks)
        self._clock: float | None = None  # realtime: the monotonic time of second 0
        self._first = 0.0  # realtime: the first sample's seconds
        self.start_seconds = start_seconds  # files: seek here (no decoding of what is before)
        # streams: a frame's seconds are wall-clock seconds since this epoch time (the live
        # service's, shared by all cameras), else since the stream was opened
        self.clock_origin = clock_origin
        self.live = "://" in source
        self.retries, self.timeout = retries, timeout
        self.max_seconds = max_seconds
        self.stats = SourceStats()
        self.length: float | None = None  # a file's length in seconds, once probed
        self._sleep = sleep

    def probe(self) -> tuple[int, int]:
        """The frame size (height, width), read from the first frame; a file's length in
        seconds goes to ``self.length`` on the way (streams have none)."""
        import cv2

        cap = _open(self.source, int(self.timeout * 1000))
        try:
            ok, frame = cap.read()
            if not self.live:
                native = cap.get(cv2.CAP_PROP_FPS) or self.fps
                self.length = cap.get(cv2.CAP_PROP_FRAME_COUNT) / native
        finally:
            cap.release()
        if not ok:
            raise SourceError(f"camera {self.name}: {self.source} gave no frame")
        return int(frame.shape[0]), int(frame.shape[1])

    def samples(self) -> int:
        """A file's frames at the sample rate from ``start_seconds`` on (and before
        ``max_seconds``), from its frame count: no frame is decoded."""
        import cv2

        cap = _open(self.source, int(self.timeout * 1000))
        try:
            native = cap.get(cv2.CAP_PROP_FPS) or self.fps
            raw = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            cap.release()
        step = max(native / self.fps, 1.0)
        count = int(np.ceil(raw / step - 1e-9))
        if self.max_seconds is not None:
            count = min(count, int(np.ceil(self.max_seconds * self.fps - 1e-9)))
        first = int(np.ceil(self.start_seconds * self.fps - 1e-9))
        return max(0, count - first)

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        return self._stream() if self.live else self._file()

    def _file(self) -> Iterator[tuple[int, float, np.ndarray]]:
        import cv2

        cap = _open(self.source, int(self.timeout * 1000))
        native = cap.get(cv2.CAP_PROP_FPS) or self.fps
        step = max(native / self.fps, 1.0)
        try:
            raw, index, due = 0, 0, 0.0
            if self.start_seconds > 0:  # resume: the sample due at start_seconds comes next
                index = int(np.ceil(self.start_seconds * self.fps - 1e-9))
                due = index * step
                raw = int(np.ceil(due - 1e-6))
                cap.set(cv2.CAP_PROP_POS_FRAMES, raw)
            while True:
                if not cap.grab():
                    return
                if raw + 1e-6 < due:
                    raw += 1
                    self.stats.skipped += 1
                    continue
                seconds = index / self.fps
                if self.max_seconds is not None and seconds >= self.max_seconds:
                    return
                if self.realtime and self._late(seconds):
                    self.stats.behind += 1
                    raw, index, due = raw + 1, index + 1, due + step
                    continue
                ok, frame = cap.retrieve()
                if not ok:
                    return
                self.stats.frames += 1
                yield index, seconds, frame
                raw, index, due = raw + 1, index + 1, due + step
        finally:
            cap.release()

    def _late(self, seconds: float) -> bool:
        """Wait for the sample at ``seconds`` to be due; True when it is over a period
        overdue: a live camera's would be gone. For the first ``REALTIME_WARMUP`` seconds of
        video a late sample moves the clock instead: the pipeline is loading its models,
        which a camera that keeps running pays once, not every minute."""
        now = time.monotonic()
        if self._clock is None:
            self._clock, self._first = now - seconds, seconds
        wait = self._clock + seconds - now
        if wait > 0:
            self._sleep(wait)
            return False
        if seconds - self._first < REALTIME_WARMUP:
            self._clock = now - seconds  # still starting: the camera starts later
            return False
        return -wait > 1.0 / self.fps

    def _stream(self) -> Iterator[tuple[int, float, np.ndarray]]:
        failures, index, started = 0, 0, time.monotonic()
        period = 1.0 / self.fps
        while True:
            try:
                cap = _open(self.source, int(self.timeout * 1000))
            except SourceError as exc:
                why = str(exc)
            else:
                try:
                    next_due = time.monotonic()
                    while True:
                        ok, frame = cap.read()
                        if not ok:
                            break
                        failures = 0
                        now = time.monotonic()
                        if now < next_due:
                            continue  # faster than the sample rate: not a sample
                        # Behind by more than a period: skip to the newest frame, counted.
                        while now - next_due > period:
                            next_due += period
                            self.stats.behind += 1
                        next_due += period
                        if self.clock_origin is None:
                            seconds = now - started
                        else:  # every camera numbers its frames by the same clock's slots
                            slot = round((time.time() - self.clock_origin) * self.fps)
                            index = max(index, slot)
                            seconds = index / self.fps
                        if self.max_seconds is not None and seconds >= self.max_seconds:
                            return
                        self.stats.frames += 1
                        yield index, seconds, frame
                        index += 1
                finally:
                    cap.release()
                why = "the stream broke"
                log.warning("camera %s: stream broke; reconnecting", self.name)
            # Not opened, or broken: pause longer each time, give up after ``retries`` in a row
            # (never, with ``retries=None``: a live service waits for its cameras).
            failures += 1
            if self.retries is not None and failures > self.retries:
                raise SourceError(
                    f"camera {self.name}: gave up after {self.retries} reconnects: {why}"
                )
            self.stats.reconnects += 1
            self._sleep(min(MAX_BACKOFF, 0.5 * 2**failures))


def interleave(
    readers: list[CameraReader],
    on_error: Callable[[CameraReader, Exception], None] | None = None,
) -> Iterator[tuple[CameraReader, int, float, np.ndarray]]:
    """Frames of every camera in time order (round-robin by sample time). A camera that
    fails is reported to ``on_error`` (default: logged) and left out; the others go on. Live
    streams are read each by its own thread, frames taken as they come: a stream that breaks
    (and waits to reconnect) never holds the others up."""
    if any(r.live for r in readers):
        yield from _as_they_come(readers, on_error or _log_error)
        return
    live = {r.name: iter(r) for r in readers}
    while live:
        for reader in readers:
            it = live.get(reader.name)
            if it is None:
                continue
            try:
                index, seconds, frame = next(it)
            except StopIteration:
                del live[reader.name]
                continue
            except Exception as exc:  # a broken camera must not stop the store
                reader.stats.failed = str(exc)
                del live[reader.name]
                (on_error or _log_error)(reader, exc)
                continue
            yield reader, index, seconds, frame


def _log_error(reader: CameraReader, exc: Exception) -> None:
    log.error("camera %s stopped: %s (the other cameras go on)", reader.name, exc)


def _as_they_come(
    readers: list[CameraReader], on_error: Callable[[CameraReader, Exception], None]
) -> Iterator[tuple[CameraReader, int, float, np.ndarray]]:
    """One thread per camera; frames in the order they are read. A live source never falls
    behind real time: when the pipeline has not taken a camera's frames waiting
    (``ROOM_PER_CAMERA``), its oldest waiting frame is dropped for the new one, counted in its
    ``stats.behind``."""
    waiting: collections.deque[tuple[CameraReader, int, float, np.ndarray] | CameraReader] = (
        collections.deque()
    )
    ready = threading.Condition()

    def put(item: tuple[CameraReader, int, float, np.ndarray] | CameraReader) -> None:
        with ready:
            if not isinstance(item, CameraReader):
                mine = [
                    k
                    for k, w in enumerate(waiting)
                    if not isinstance(w, CameraReader) and w[0] is item[0]
                ]
                if len(mine) >= ROOM_PER_CAMERA:
                    del waiting[mine[0]]
                    item[0].stats.behind += 1
            waiting.append(item)
            ready.notify()

    def read(reader: CameraReader) -> None:
        try:
            for index, seconds, frame in reader:
                put((reader, index, seconds, frame))
        except Exception as exc:  # a broken camera must not stop the store
            reader.stats.failed = str(exc)
            on_error(reader, exc)
        finally:
            put(reader)  # this camera has ended

    for reader in readers:
        name = f"camera-{reader.name}"
        threading.Thread(target=read, args=(reader,), name=name, daemon=True).start()
    running = len(readers)
    while running:
        with ready:
            ready.wait_for(lambda: bool(waiting))
            item = waiting.popleft()
        if isinstance(item, CameraReader):
            running -= 1
        else:
            yield item
