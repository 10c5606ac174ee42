"""A real PostgreSQL server for the tests, in a temporary folder, on 127.0.0.1.

Debian's ``postgresql`` package (the Makefile and .ci/run install it). The server runs as the
``postgres`` user when the tests run as root (PostgreSQL refuses to run as root), listens on a
free port of 127.0.0.1 only, trusts local connections, and is stopped (fast) at the end.
Outside CI a missing server skips the test, saying why; under CI (``CI=true``) it fails.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def missing(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (under CI the real server must run: see .ci/run)")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """A running server; yields its URL (``postgresql://postgres@127.0.0.1:PORT/postgres``).
    Its folder is a new one under the system's temporary folder (pytest's are private to
    root, and the server runs as ``postgres``), removed at the end."""
    bin_dir = _binaries()
    if bin_dir is None:
        missing("PostgreSQL is not installed (Debian's postgresql package: make installs it)")
        raise AssertionError("unreachable")
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing("running as root and there is no postgres user to run the server as")
        run_as = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="peopleflow-pg-"))
    if run_as:
        shutil.chown(folder, "postgres")
    data = folder / "data"
    port = _free_port()
    ctl = [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log")]
    try:
        made = subprocess.run(
            [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
            capture_output=True,
            text=True,
        )
        if made.returncode:
            raise RuntimeError(f"initdb failed: {made.stderr}")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*ctl, "-o", options, "-w", "-t", "30", "start"], check=True)
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*ctl, "-m", "fast", "-w", "-t", "30", "stop"], check=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
