"""Unlink a process's shared-memory names when it dies, however it dies.

A process that creates segments starts one janitor: a tiny Python child that holds the read end
of a pipe. The owner writes ``+name`` / ``-name`` lines as it creates and removes names. When the
owner exits for any reason (even SIGKILL) the kernel closes the pipe, the janitor reads EOF and
unlinks whatever is left: the names it was told about plus, where /dev/shm exists, every entry
that starts with ``conveyor-<owner pid>-`` (which also covers doorbell FIFOs, checkpoints and
overflow segments made on the owner's behalf by other processes). An owner that was killed
(it did not say goodbye at exit) gets that sweep again over the next 8 s: its children die
just after it and may write one more file meanwhile. Then the janitor exits.

The janitor runs in its own session and ignores SIGINT, so Ctrl-C or a process-group kill that
takes down the owner does not take the janitor with it before it has cleaned up.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import threading

# Runs as `python -I -S -c`: standard library only, starts in ~20 ms.
_JANITOR_SOURCE = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
prefix, shm_dir, owner = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = set()
said_goodbye = False
for line in sys.stdin.buffer:
    line = line.decode().strip()
    if line[:1] == "+":
        names.add(line[1:])
    elif line[:1] == "-":
        names.discard(line[1:])
    elif line == "=":
        said_goodbye = True

def unlink(name):
    try:
        import _posixshmem
        _posixshmem.shm_unlink("/" + name)
    except Exception:
        try:
            os.unlink(os.path.join(shm_dir, name))
        except OSError:
            pass

def owned():
    if not os.path.isdir(shm_dir):
        return []
    return [n for n in os.listdir(shm_dir) if n.startswith(prefix)]

def running(pid):  # a zombie (killed, not yet reaped by its parent) is not
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False

for name in names | set(owned()):
    unlink(name)
if not said_goodbye:
    # Killed: the kernel closes the owner's files (our EOF) before it signals the owner's
    # children that their parent died, so a child may still write a file with the owner's
    # prefix (a checkpoint) just after the sweep above. Sweep again, unless the pid was
    # given to a new process meanwhile.
    for pause in (0.2, 0.5, 1.0, 2.0, 4.0):
        time.sleep(pause)
        if running(owner):
            break
        for name in owned():
            unlink(name)
"""

_lock = threading.Lock()
_proc: subprocess.Popen[bytes] | None = None
_proc_pid_owner = 0  # the pid that started _proc (a forked child must start its own)


def _janitor() -> subprocess.Popen[bytes]:
    global _proc, _proc_pid_owner
    if _proc is not None and _proc_pid_owner == os.getpid() and _proc.poll() is None:
        return _proc
    prefix = f"conveyor-{os.getpid()}-"
    _proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _JANITOR_SOURCE, prefix, "/dev/shm", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    _proc_pid_owner = os.getpid()
    return _proc


def _send(line: str) -> None:
    with _lock:
        proc = _janitor()
        assert proc.stdin is not None
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()


def watch(name: str) -> None:
    """Have the janitor unlink ``name`` if this process dies before it does."""
    _send("+" + name)


def forget(name: str) -> None:
    """The name was unlinked by its owner; nothing left for the janitor to do."""
    if _proc is None or _proc_pid_owner != os.getpid():
        return
    with contextlib.suppress(BrokenPipeError, ValueError):
        _send("-" + name)


@atexit.register
def _stop_at_exit() -> None:
    """Normal exit: let the janitor clean up now, and reap it (no zombie, no ResourceWarning)."""
    global _proc
    proc, _proc = _proc, None
    if proc is None or _proc_pid_owner != os.getpid():
        return
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"=\n")  # a normal exit: nothing of ours is still writing
        proc.stdin.close()
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()


def janitor_pid() -> int | None:
    """The janitor's pid in this process, if one was started (for tests)."""
    return _proc.pid if _proc is not None and _proc_pid_owner == os.getpid() else None
