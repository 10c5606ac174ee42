"""One wait object per consuming process, rung by all of its channels only when it sleeps.

A doorbell is two named things that any process can attach to by name:

* a FIFO (a named pipe) that the sleeper polls and ringers write one byte to;
* a 64-byte shared-memory word, ``sleeping``, that the sleeper sets just before it sleeps.

The hot path makes no system call: a writer publishes its data, then reads ``sleeping``, and
writes to the FIFO only when it is set. The sleeper sets ``sleeping``, then re-checks its inputs,
and only then polls. This is the classic store-then-load handshake (Dekker): on each side a lock
acquire/release between the store and the load is a locked instruction on x86-64, i.e. a full
fence, so one of the two always sees the other. As a second line of defence the sleeper never
sleeps longer than ``MAX_NAP`` seconds before re-checking, so a lost wake-up on a weaker memory
model is a short delay, never a hang.

Why a FIFO and not an eventfd: an eventfd can only reach another process by inheritance or fd
passing, and a replacement pipeline (after a crash) or a Ray actor is started later, by someone
else. A FIFO costs the same system calls (one write to ring, one poll + read to wake) and
attaches by name.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from conveyor.transport import janitor
from conveyor.transport.segment import SHM_DIR, Segment, new_name

MAX_NAP = 0.05  # longest single sleep before re-checking (bounds a lost wake-up)

_fence_lock = threading.Lock()


def full_fence() -> None:
    """Order this process's earlier stores before its later loads (see module docstring)."""
    _fence_lock.acquire()
    _fence_lock.release()


def _fifo_dir() -> Path:
    return SHM_DIR if SHM_DIR.is_dir() else Path(os.environ.get("TMPDIR", "/tmp"))


class Doorbell:
    """The wait object of one consuming process.

    The process that will sleep on it creates it (``Doorbell.create()``) or attaches to one made
    for it (``Doorbell.attach(name)``, e.g. a replacement after a crash). Producers attach by
    name and call ``ring()`` after publishing data.
    """

    def __init__(self, name: str, flag: Segment) -> None:
        self.name = name
        self._flag_seg = flag
        self._sleeping = flag.buf[:4].cast("I")
        self._fifo_path = str(_fifo_dir() / (name + ".fifo"))
        self._read_fd: int | None = None  # opened lazily by the waiter
        self._write_fd: int | None = None  # opened lazily by ringers
        self.rings_sent = 0  # system calls made by ring(): how often a sleeper was woken

    @classmethod
    def create(cls, name: str | None = None) -> Doorbell:
        name = name or new_name("bell")
        flag = Segment.create("bell", 64, name=name)
        fifo = str(_fifo_dir() / (name + ".fifo"))
        janitor.watch(name + ".fifo")
        os.mkfifo(fifo, 0o600)
        return cls(name, flag)

    @classmethod
    def attach(cls, name: str) -> Doorbell:
        return cls(name, Segment.attach(name))

    # -- ringer side ---------------------------------------------------------------------------

    def ring(self) -> None:
        """Wake the owner if it sleeps. Call after publishing data (costs no syscall if awake)."""
        full_fence()
        if self._sleeping[0]:
            self._ring_now()

    def _ring_now(self) -> None:
        if self._write_fd is None:
            try:
                self._write_fd = os.open(self._fifo_path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:  # ENXIO: no reader (the owner died); ENOENT: bell removed
                if exc.errno in (errno.ENXIO, errno.ENOENT):
                    return
                raise
        try:
            os.write(self._write_fd, b"\x01")
            self.rings_sent += 1
        except BlockingIOError:
            pass  # the pipe is full of unread rings: the owner is being woken anyway
        except BrokenPipeError:
            os.close(self._write_fd)
            self._write_fd = None

    # -- sleeper side --------------------------------------------------------------------------

    def wait(
        self,
        ready: Callable[[], bool],
        timeout: float | None = None,
        spin: float = 0.0,
        on_nap: Callable[[], None] | None = None,
        extra_fds: Sequence[int] = (),
    ) -> bool:
        """Return True as soon as ``ready()`` is true, False if ``timeout`` passes first.

        ``spin`` seconds of busy re-checking come first (cheaper than a sleep when data is
        microseconds away and a core is free). ``on_nap`` runs after each nap without data, for
        example to check that the peer is still alive. ``extra_fds`` are waited on in the same
        call (process sentinels, a control pipe): when one is readable, ``wait`` returns True.
        """
        if ready():
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        if spin > 0:
            spin_end = time.monotonic() + min(spin, timeout if timeout is not None else spin)
            while time.monotonic() < spin_end:
                if ready():
                    return True
        if self._read_fd is None:
            # O_RDWR: opening never blocks and the FIFO never reports EOF while we hold it.
            self._read_fd = os.open(self._fifo_path, os.O_RDWR | os.O_NONBLOCK)
        while True:
            self._sleeping[0] = 1
            full_fence()
            if ready():
                self._sleeping[0] = 0
                return True
            nap = MAX_NAP
            if deadline is not None:
                nap = min(nap, deadline - time.monotonic())
                if nap <= 0:
                    self._sleeping[0] = 0
                    return ready()
            readable, _, _ = select.select([self._read_fd, *extra_fds], [], [], nap)
            self._sleeping[0] = 0
            if self._read_fd in readable:
                self._drain()
            if ready() or any(fd in readable for fd in extra_fds):
                return True
            if on_nap is not None:
                on_nap()

    def _drain(self) -> None:
        assert self._read_fd is not None
        try:
            while os.read(self._read_fd, 4096):
                pass
        except BlockingIOError:
            pass

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            if fd is not None:
                os.close(fd)
        self._read_fd = self._write_fd = None
        owner = self._flag_seg.owner
        self._sleeping.release()
        self._flag_seg.close()
        if owner:
            try:
                if stat.S_ISFIFO(os.stat(self._fifo_path).st_mode):
                    os.unlink(self._fifo_path)
            except FileNotFoundError:
                pass
            janitor.forget(self.name + ".fifo")

    def __enter__(self) -> Doorbell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Doorbell {self.name}>"
