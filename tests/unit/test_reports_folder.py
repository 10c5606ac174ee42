"""The Ray launcher's report folders: a killed actor's is removed by the next one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conveyor.backends.ray_backend import REPORTS_PREFIX, reports_folder


def test_a_folder_whose_process_ended_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # reaped: its pid names no process now
    gone = tmp_path / f"{REPORTS_PREFIX}{ended.pid}-abc"
    (gone / "sub").mkdir(parents=True)
    (gone / "reports").write_text("")
    alive = tmp_path / f"{REPORTS_PREFIX}{os.getppid()}-def"  # the test runner's parent lives
    alive.mkdir()
    other = tmp_path / f"{REPORTS_PREFIX}notapid"  # not named by a pid: not ours to judge
    other.mkdir()

    made = Path(reports_folder(str(tmp_path)))

    assert not gone.exists()
    assert alive.is_dir() and other.is_dir()
    assert made.is_dir() and made.name.startswith(f"{REPORTS_PREFIX}{os.getpid()}-")
    assert made.stat().st_mode & 0o777 == 0o700  # private: the socket in it takes reports
