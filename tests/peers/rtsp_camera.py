#!/usr/bin/python3
"""An IP camera for tests and benchmarks: GStreamer's RTSP server serving x264.

Runs under the system Python (Debian's ``python3-gi`` with ``gir1.2-gst-rtsp-server-1.0``),
not the project's virtual environment, so start it with ``/usr/bin/python3``:

    /usr/bin/python3 tests/peers/rtsp_camera.py --port 8554 --path /cam --size 1280x720

It serves a moving test pattern encoded by x264 (baseline, keyframe every second, SPS/PPS
sent with every keyframe, as classroom IP cameras do) at rtsp://127.0.0.1:PORT/PATH and
prints ``READY rtsp://…`` on stdout once it listens. SIGTERM stops it, which for a client
looks like the camera being unplugged.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--kbps", type=int, default=2000)
    parser.add_argument("--pattern", default="ball")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern={args.pattern} "
        f"! video/x-raw,width={width},height={height},framerate={args.fps}/1,format=I420 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast bitrate={args.kbps} "
        f"key-int-max={args.fps} "
        "! video/x-h264,profile=baseline "
        "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
