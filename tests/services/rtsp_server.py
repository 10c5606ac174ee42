"""A real RTSP server for the tests: GStreamer's (Debian's gir1.2-gst-rtsp-server-1.0), run
by the system's Python (its ``gi`` bindings are Debian's, not the virtual environment's).

    /usr/bin/python3 rtsp_server.py PORT MOUNT VIDEO.mp4

serves ``rtsp://127.0.0.1:PORT/MOUNT``: the H.264 video, paced in real time, one media shared
by every client (a probe and then the reader), until killed.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, mount, video = sys.argv[1], sys.argv[2], sys.argv[3]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{video}" ! qtdemux ! h264parse ! '
        "rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory(f"/{mount}", factory)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
