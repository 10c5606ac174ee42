"""Code that tests run in child processes (spawned, so it must live in an importable module)."""

from __future__ import annotations

import os
import signal
import time
import zlib
from typing import Any

import numpy as np

from conveyor.transport import (
    CameraSpec,
    Doorbell,
    EndOfChannel,
    FrameStore,
    Ring,
    RingReader,
    RingWriter,
)


def frame(i: int, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def produce_frames(ring: str, n: int, shape: tuple[int, ...], store: str | None) -> None:
    """Write n distinct frames with their CRC, as arrays or as frame-store references."""
    w = RingWriter(ring)
    fs = FrameStore.attach(store) if store else None
    for i in range(n):
        pixels = frame(i, shape)[:, ::-1]  # a non-contiguous view: still one copy on write
        crc = zlib.crc32(np.ascontiguousarray(pixels).tobytes())
        if fs is None:
            w.write({"i": i, "crc": crc, "frame": pixels}, timeout=30)
        else:
            ref = fs.write(0, np.ascontiguousarray(pixels), index=i, timeout=30)
            w.write({"i": i, "crc": crc, "frame": ref}, timeout=30)
            fs.release(ref)
    w.close()


def write_then_die(ring: str, n: int) -> None:
    w = RingWriter(ring)
    for i in range(n):
        w.write(i)
    os.kill(os.getpid(), signal.SIGKILL)


def attach_reader_then_die(ring: str) -> None:
    RingReader(ring)
    os.kill(os.getpid(), signal.SIGKILL)


def read_some_then_die(ring: str, read: int, commit: int) -> None:
    r = RingReader(ring)
    msgs = [r.read(timeout=10) for _ in range(read)]
    for m in msgs[:commit]:
        m.commit()
    os.kill(os.getpid(), signal.SIGKILL)


def read_all(ring: str, conn: Any) -> None:
    r = RingReader(ring)
    values = []
    while True:
        msg = r.try_read()
        if msg is None:
            break
        values.append(msg.value)
        msg.commit()
    conn.send(values)


def ring_bell_later(bell: str, delay: float) -> None:
    time.sleep(delay)
    b = Doorbell.attach(bell)
    b._ring_now()


def own_segments_then_wait(conn: Any) -> None:
    """Create every kind of segment, report their names, then wait to be killed."""
    ring = Ring(capacity=1 << 16)
    store = FrameStore.create([CameraSpec("cam", (8, 8, 3))])
    bell = Doorbell.create()
    w = ring.writer()
    w.write(np.zeros(ring.capacity))  # an overflow segment too
    conn.send([ring.name, store.name, bell.name])
    time.sleep(60)


def try_second_writer(ring: str, conn: Any) -> None:
    try:
        RingWriter(ring)
        conn.send("attached")
    except Exception as exc:
        conn.send(str(exc))


def read_until_closed(ring: str, conn: Any) -> None:
    r = RingReader(ring)
    values = []
    while True:
        try:
            msg = r.read(timeout=20)
        except EndOfChannel:
            break
        values.append(msg.value)
        msg.commit()
    conn.send(values)
