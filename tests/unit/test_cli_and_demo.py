"""The command line and the demo run as a new user would run them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conveyor import cli, demo


def test_version_and_clean() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "conveyor.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.startswith("conveyor ")
    assert cli.main(["clean"]) == 0


def test_unknown_arguments_are_refused() -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["clean", "--bogus"])
    assert info.value.code == 2


def test_demo_checks_every_frame_and_reports_rates(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--seconds", "0.5", "--cameras", "1"]) == 0
    text = capsys.readouterr().out
    assert "frames/s" in text and "corrupted frames: 0" in text
