"""Start and stop the GStreamer RTSP camera (tests/peers/rtsp_camera.py) from tests."""

from __future__ import annotations

import pathlib
import shutil
import socket
import subprocess
import time

from edge_agent.profile import Device

SCRIPT = pathlib.Path(__file__).with_name("rtsp_camera.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def available() -> bool:
    """Whether Debian's GStreamer RTSP server and python3-gi are installed."""
    if not pathlib.Path(SYSTEM_PYTHON).exists() or shutil.which("gst-inspect-1.0") is None:
        return False
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def rtsp_device(
    url: str, name: str = "teacher", width: int = 1920, height: int = 1080, fps: int = 25
) -> Device:
    """A profile camera that pulls ``url`` (the agent's rtsp driver, passed through)."""
    return Device(
        name=name,
        kind="camera",
        role="teacher",
        driver="rtsp",
        url=url,
        width=width,
        height=height,
        fps=fps,
        bitrate=4_000_000 if height >= 1080 else 1_000_000,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspCamera:
    """One IP camera on loopback; ``unplug()`` stops it, ``plug()`` starts it again."""

    def __init__(self, port: int | None = None, size: str = "1280x720", fps: int = 30) -> None:
        self.port = port or free_port()
        self.size, self.fps = size, fps
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self._proc: subprocess.Popen[str] | None = None

    def plug(self, timeout: float = 10.0) -> None:
        """Start serving; returns once the server listens."""
        self._proc = subprocess.Popen(
            [
                SYSTEM_PYTHON,
                str(SCRIPT),
                "--port",
                str(self.port),
                "--size",
                self.size,
                "--fps",
                str(self.fps),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = self._proc.stdout.readline()
        if not line.startswith("READY") or time.monotonic() > deadline:
            self.unplug()
            raise RuntimeError(f"RTSP camera on port {self.port} did not start: {line!r}")

    def unplug(self) -> None:
        """Stop serving, as if the camera lost power."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None

    def __enter__(self) -> RtspCamera:
        self.plug()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unplug()
