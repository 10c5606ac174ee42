"""Named shared-memory segments: private (mode 0600), pre-faulted, and never leaked.

Every segment is named ``conveyor-<owner pid>-<kind>-<random>`` so that anyone can see whose it
is, and a sweep can tell a live owner's segments from a dead one's. The owner unlinks its
segments when it closes them; if it dies first (SIGKILL, segfault, OOM killer), its janitor does
(see ``janitor.py``).

We do not use ``multiprocessing.shared_memory``: on Python 3.11 every process that attaches a
segment registers it with a resource tracker that may unlink it when *that* process exits, which
is wrong for a segment that outlives a crashed worker.
"""

from __future__ import annotations

import _posixshmem
import contextlib
import mmap
import os
import secrets
from pathlib import Path

from conveyor._errors import ConfigurationError
from conveyor.transport import janitor
from conveyor.transport.procs import pid_alive

PREFIX = "conveyor-"
SHM_DIR = Path("/dev/shm")
_MODE = 0o600
# Pre-fault the mapping at mmap time: a fresh 4 KiB page costs ~4 us to touch, which would
# otherwise land on the first frame written through it.
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def new_name(kind: str) -> str:
    """A fresh segment name owned by this process."""
    return f"{PREFIX}{os.getpid()}-{kind}-{secrets.token_hex(4)}"


def owner_pid(name: str) -> int | None:
    """The pid encoded in a conveyor segment name, or None if it is not one of ours."""
    if not name.startswith(PREFIX):
        return None
    head = name[len(PREFIX) :].split("-", 1)[0]
    return int(head) if head.isdigit() else None


class Segment:
    """One named shared-memory segment mapped into this process.

    ``buf`` is a writable memoryview of the whole mapping. Views handed out over it stay valid
    while this object is open; ``close()`` unmaps it when no view is left (otherwise the mapping
    lives on until the last view is garbage-collected, so a stray view never segfaults).
    """

    def __init__(self, name: str, mm: mmap.mmap, owner: bool) -> None:
        self.name = name
        self.size = len(mm)
        self.owner = owner
        self._mm: mmap.mmap | None = mm
        self._ro_mm: mmap.mmap | None = None
        self.buf = memoryview(mm)

    def readonly(self) -> memoryview:
        """A second mapping of the segment with PROT_READ: views over it cannot be written.

        numpy lets ``flags.writeable = True`` succeed on a view whose base is writable, so
        read-only views handed to users come from this mapping, where a write is refused (and
        the kernel would stop it even if forced).
        """
        if self._ro_mm is None:
            fd = _posixshmem.shm_open("/" + self.name, os.O_RDONLY, mode=_MODE)
            try:
                self._ro_mm = mmap.mmap(
                    fd, self.size, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ
                )
            finally:
                os.close(fd)
        return memoryview(self._ro_mm)

    @classmethod
    def create(cls, kind: str, size: int, name: str | None = None, watch: bool = True) -> Segment:
        """Create a new segment of ``size`` bytes, mode 0600, owned by this process.

        ``watch=False`` leaves it out of this process's janitor: for a segment made on behalf of
        another owner whose name carries that owner's pid (the owner's janitor covers it).
        """
        if size <= 0:
            raise ConfigurationError(f"segment size must be positive, got {size}")
        name = name or new_name(kind)
        if watch:
            janitor.watch(name)
        fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=_MODE)
        try:
            os.fchmod(fd, _MODE)  # shm_open honours the umask; make the mode exact
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | _POPULATE)
        except BaseException:
            _posixshmem.shm_unlink("/" + name)
            janitor.forget(name)
            raise
        finally:
            os.close(fd)
        return cls(name, mm, owner=True)

    @classmethod
    def attach(cls, name: str) -> Segment:
        """Map an existing segment created by another process (or this one)."""
        try:
            fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=_MODE)
        except FileNotFoundError:
            raise ConfigurationError(
                f"no shared-memory segment named {name!r}: its owner closed it or died"
            ) from None
        try:
            size = os.fstat(fd).st_size
            mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | _POPULATE)
        finally:
            os.close(fd)
        return cls(name, mm, owner=False)

    @property
    def closed(self) -> bool:
        return self._mm is None

    def close(self) -> None:
        """Unmap, and unlink if this process owns the segment. Idempotent."""
        mm, self._mm = self._mm, None
        if mm is None:
            return
        self.buf.release()
        # If numpy views are still alive, the mapping goes when the last one does.
        for m in (mm, self._ro_mm):
            if m is not None:
                with contextlib.suppress(BufferError):
                    m.close()
        self._ro_mm = None
        if self.owner:
            unlink(self.name)

    def __enter__(self) -> Segment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.size} bytes"
        return f"<Segment {self.name} {state}>"


def unlink(name: str) -> None:
    """Remove a segment's name (its memory goes when the last mapping does). Idempotent."""
    with contextlib.suppress(FileNotFoundError):
        _posixshmem.shm_unlink("/" + name)
    janitor.forget(name)


def leaked_segments(pids: set[int] | None = None) -> list[str]:
    """Names under /dev/shm that belong to conveyor (optionally only to these owner pids)."""
    if not SHM_DIR.is_dir():
        return []
    names = [p.name for p in SHM_DIR.iterdir() if p.name.startswith(PREFIX)]
    if pids is not None:
        names = [n for n in names if owner_pid(n) in pids]
    return sorted(names)


def sweep_orphans() -> list[str]:
    """Unlink every conveyor segment whose owner process is gone; returns what was removed."""
    removed = []
    for name in leaked_segments():
        pid = owner_pid(name)
        if pid is not None and not pid_alive(pid):
            try:
                os.unlink(SHM_DIR / name)
                removed.append(name)
            except FileNotFoundError:
                pass
    return removed
