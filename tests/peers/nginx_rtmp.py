"""A real RTMP server on loopback for tests: Debian's nginx with its RTMP module.

It stands in for the live platform (DingTalk, WeChat) that a lesson is pushed to. The
server runs in the foreground as a single process, with its configuration, pid file, logs
and recordings in a directory of its own, and records every published stream to
``<record_dir>/<stream>.flv`` so a test can check what arrived with ffprobe.

Debian 12 packages: ``nginx`` and ``libnginx-mod-rtmp``. Tests use this instance only; a
system nginx the packages may have installed is never touched.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

#: Where Debian's libnginx-mod-rtmp installs the dynamic module.
MODULE = pathlib.Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
APPLICATION = "live"


def nginx_binary() -> str | None:
    """The nginx executable, or None when nginx is not installed."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
    )


def available() -> bool:
    """Whether nginx and its RTMP module are installed (``nginx libnginx-mod-rtmp``)."""
    return nginx_binary() is not None and MODULE.is_file()


def why_unavailable() -> str:
    """A skip reason that says what to install."""
    missing = []
    if nginx_binary() is None:
        missing.append("nginx")
    if not MODULE.is_file():
        missing.append(f"libnginx-mod-rtmp ({MODULE})")
    return (
        f"RTMP server not installed: missing {', '.join(missing)}; run "
        "`apt-get install --no-install-recommends nginx libnginx-mod-rtmp` (scripts/bootstrap)"
    )


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: nginx gets SIGTERM if the test process dies first."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _config(directory: pathlib.Path, port: int) -> str:
    # One foreground process (no master, no workers): it runs as whoever starts it, so
    # ``user`` only matters as root, where nginx would otherwise switch to www-data.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""\
load_module {MODULE};
daemon off;
master_process off;
{user}pid {directory / "nginx.pid"};
error_log {directory / "error.log"} info;
events {{ worker_connections 64; }}
rtmp {{
    access_log {directory / "rtmp-access.log"};
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application {APPLICATION} {{
            live on;
            record all;
            record_path {directory / "records"};
            record_unique off;
        }}
    }}
}}
"""


class NginxRtmp:
    """nginx-rtmp on ``127.0.0.1:port``; ``start()``/``stop()`` or use it as a context manager.

    ``url(stream)`` is the address to publish to; ``recording(stream)`` the file the
    server records it into. Stopping and starting again keeps the port and the directory,
    so a test can take the server away and bring it back.
    """

    def __init__(self, port: int | None = None, directory: pathlib.Path | None = None) -> None:
        self.port = port or free_port()
        self._own_dir = directory is None
        self.directory = directory or pathlib.Path(tempfile.mkdtemp(prefix="nginx-rtmp-"))
        self.record_dir = self.directory / "records"
        self.config = self.directory / "nginx.conf"
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, stream: str = "lesson") -> str:
        """The RTMP URL to publish ``stream`` to."""
        return f"rtmp://127.0.0.1:{self.port}/{APPLICATION}/{stream}"

    def recording(self, stream: str = "lesson") -> pathlib.Path:
        """The FLV file the server records ``stream`` into."""
        return self.record_dir / f"{stream}.flv"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """The server's error log (for assertion messages)."""
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; returns once the port accepts connections."""
        binary = nginx_binary()
        if binary is None or not MODULE.is_file():
            raise RuntimeError(why_unavailable())
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(_config(self.directory, self.port))
        self._proc = subprocess.Popen(
            # -e: the startup error log too, so nothing is written under /var/log/nginx.
            [
                binary,
                "-p",
                str(self.directory),
                "-c",
                str(self.config),
                "-e",
                str(self.directory / "error.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                stderr = (
                    self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                )
                self._proc = None
                raise RuntimeError(
                    f"nginx-rtmp on port {self.port} exited at start: {stderr.strip()} "
                    f"{self.log()[-2000:]} (config: {self.config})"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"nginx-rtmp did not accept on 127.0.0.1:{self.port} within {timeout} s; "
                    f"error log: {self.log()[-2000:]}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (fast shutdown; recordings are closed)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()

    def cleanup(self) -> None:
        """Stop, and remove the directory if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> NginxRtmp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
