"""Is a process still alive? (A zombie, dead but not yet reaped, counts as dead.)"""

from __future__ import annotations

import os

_HAVE_PROC = os.path.exists("/proc/self/stat")


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a running process. Cheap enough for a check per nap, not per item."""
    if pid <= 0:
        return False
    if not _HAVE_PROC:
        return _kill_probe(pid)
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    except OSError:
        return _kill_probe(pid)
    # The state letter follows the last ')' (the command name may itself contain parentheses).
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


def _kill_probe(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
