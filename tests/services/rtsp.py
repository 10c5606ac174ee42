"""Real RTSP cameras for the tests: GStreamer's RTSP server (``rtsp_server.py``, run by the
system's Python) serving a generated store video on 127.0.0.1, one server per camera, so that
a camera can be cut (its server killed: clients see the stream break) and brought back.

The video is first made long (looped) and H.264 with ffmpeg, so the server only packetises.
It is made like a camera's stream: 10 frames a second (the generated store's frames repeated)
with a key frame every second, where the generated video has 2 frames a second. A client that
connects waits for a key frame, so the key frame interval, not the sample rate the service
reads at, is what a reconnection costs.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from pathlib import Path

from tests.services.postgres import missing

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
STREAM_FPS = 10
KEY_FRAME_EVERY = 10  # frames: one second


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_tools() -> str:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        missing("ffmpeg is not installed (Debian's ffmpeg package: make installs it)")
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
        capture_output=True,
    )
    if probe.returncode:
        missing(
            "GStreamer's RTSP server is not installed (Debian's gir1.2-gst-rtsp-server-1.0 "
            "and gstreamer1.0-plugins-good/-bad: make installs them)"
        )
    return str(ffmpeg)


class RtspCamera:
    """``rtsp://127.0.0.1:PORT/NAME`` playing ``video`` looped ``loops`` times."""

    def __init__(self, name: str, video: Path, loops: int = 8) -> None:
        ffmpeg = _check_tools()
        # Made once per video and kept beside it (a second test's camera of the same video
        # reuses it): the transcoding took 6 s a camera at 20 loops. 8 loops of the tests'
        # 30 s videos are 4 minutes of stream, over twice the longest test's waits.
        self.video = video.with_name(f"{name}-rtsp-x{loops}.mp4")
        if not self.video.exists():
            part = self.video.with_suffix(".part.mp4")
            subprocess.run(
                [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-stream_loop",
                 str(loops - 1), "-i", str(video), "-an", "-r", str(STREAM_FPS), "-c:v",
                 "libx264", "-preset", "ultrafast", "-g", str(KEY_FRAME_EVERY), "-bf", "0",
                 str(part)],
                check=True,
            )  # fmt: skip
            part.rename(self.video)
        self.name, self.port = name, free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/{name}"
        self._proc: subprocess.Popen[str] | None = None

    def on(self) -> None:
        assert self._proc is None, "already on"
        self._proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.port), self.name, str(self.video)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        assert line.strip() == "ready", line + self._proc.stdout.read()

    def off(self) -> None:
        """Cut the camera: its server goes, and its clients see the stream break."""
        if self._proc is not None:
            self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.communicate(timeout=10)
            self._proc = None

    def close(self) -> None:
        self.off()
