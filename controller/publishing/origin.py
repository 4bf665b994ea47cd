"""The HLS origin: Debian's nginx with its RTMP module, configured and run by the controller.

The lead classroom pushes its programme over RTMP to the ``publish`` application (its
H.264 as encoded, AAC audio); nginx-rtmp cuts it into MPEG-TS fragments and a playlist
per lesson (``hls/<lesson>/index.m3u8``) with no re-encode, and nginx's HTTP server
hands them to the viewers, or to a CDN in front of it. Only a stream whose key the
controller's gate accepts is taken (``on_publish``); only loopback may play RTMP.

Viewers reach a lesson two ways (see :mod:`controller.publishing.links`):

- ``/s/<md5>/<expires>/<lesson>/``: nginx's ``secure_link`` checks the hash and the expiry
  on the page, the playlist and every segment, and answers 403 to a forged or expired one;
- ``/lan/<lesson>/``: only the intranet's networks (``allow``/``deny``).

The page itself (``watch.html``) and its player (hls.js, vendored with the console) come
from the same server, so the controller never serves the viewers. nginx runs as one
foreground process (``master_process off``): nginx-rtmp keeps a live stream inside one
worker, and one event loop serves hundreds of viewers' small static files easily.
"""

from __future__ import annotations

import ipaddress
import os
import pathlib
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

from controller.publishing.links import SECRET

#: Where Debian's libnginx-mod-rtmp installs the dynamic module.
RTMP_MODULE = pathlib.Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
APPLICATION = "publish"
PAGE_DIR = pathlib.Path(__file__).resolve().parent / "static"
PLAYER_DIR = PAGE_DIR.parents[1] / "console" / "static" / "vendor" / "hls.js"
#: The intranet by default: the private ranges and loopback.
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8")
# The watch page's own rules: hls.js runs its demuxer in a blob: worker and feeds MSE.
PAGE_CSP = (
    "default-src 'self'; media-src 'self' blob:; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def _host_port(value: str, what: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} {value!r}: write HOST:PORT, e.g. 0.0.0.0:8088")
    return host, int(port)


@dataclass(frozen=True)
class OriginConfig:
    """Where the origin listens, where its files go, and what it tells viewers and agents.

    ``push_base`` is the RTMP address the lead classroom's agent reaches the origin at
    (default: ``rtmp://`` + ``rtmp_listen``); ``public_base`` and ``intranet_base`` are the
    addresses viewers open (a CDN's or a reverse proxy's, default the HTTP listener).
    """

    directory: pathlib.Path
    secret: str
    rtmp_listen: str = "127.0.0.1:1935"
    http_listen: str = "127.0.0.1:8088"
    gate_port: int = 0  # the controller's on_publish check on loopback (0: any free port)
    push_base: str = ""
    public_base: str = ""
    intranet_base: str = ""
    intranet_networks: tuple[str, ...] = PRIVATE_NETWORKS
    fragment_s: float = 1.0  # nginx cuts at the first keyframe after this
    playlist_s: float = 6.0
    link_hours: float = 4.0  # how long a public watch link is valid unless asked otherwise
    worker_connections: int = 4096

    def __post_init__(self) -> None:
        if not SECRET.match(self.secret):
            raise ValueError(
                "the origin's secret must be 32 to 128 lowercase hex digits (it signs watch "
                "links and stream keys); let the controller make one in its state directory"
            )
        _host_port(self.rtmp_listen, "rtmp_listen")
        _host_port(self.http_listen, "http_listen")
        for net in self.intranet_networks:
            try:
                ipaddress.ip_network(net)
            except ValueError as err:
                raise ValueError(
                    f"intranet network {net!r}: {err}; write e.g. 10.0.0.0/8"
                ) from None
        if not 0.2 <= self.fragment_s <= 10 or not self.fragment_s * 2 <= self.playlist_s <= 60:
            raise ValueError(
                f"fragment_s {self.fragment_s} / playlist_s {self.playlist_s}: fragments of "
                "0.2..10 s and a playlist of at least two fragments, at most 60 s"
            )

    @property
    def push_url(self) -> str:
        """The RTMP application the lead publishes to (its stream name is the lesson id)."""
        base = self.push_base or f"rtmp://{self.rtmp_listen}"
        return f"{base.rstrip('/')}/{APPLICATION}"

    @property
    def viewer_base(self) -> str:
        """Where public viewers open links."""
        return (self.public_base or f"http://{self.http_listen}").rstrip("/")

    @property
    def lan_base(self) -> str:
        """Where intranet viewers open links."""
        return (self.intranet_base or self.public_base or f"http://{self.http_listen}").rstrip("/")

    @property
    def hls_dir(self) -> pathlib.Path:
        """Where nginx-rtmp writes each lesson's playlist and fragments."""
        return self.directory / "hls"


def render(config: OriginConfig, gate_port: int) -> str:
    """nginx.conf for the origin (one foreground process, everything under ``directory``)."""
    d = config.directory
    user = "user root;\n" if os.geteuid() == 0 else ""
    lesson = r"(?<lesson>[A-Za-z0-9_-][A-Za-z0-9._-]{0,79})"
    media = r"(?<file>index\.m3u8|[0-9]{1,12}\.ts)"
    signed = r"/s/(?<hash>[A-Za-z0-9_-]{22})/(?<expires>[0-9]{1,12})/" + lesson
    allow = "".join(f"            allow {net};\n" for net in config.intranet_networks)
    # Both 'invalid' ("") and 'expired' ("0") are refused the same way: 403.
    check = (
        "            secure_link $hash,$expires;\n"
        f'            secure_link_md5 "$expires$lesson {config.secret}";\n'
        '            if ($secure_link = "") { return 403; }\n'
        '            if ($secure_link = "0") { return 403; }\n'
    )
    lan_check = f"{allow}            deny all;\n"
    page = (
        f"            root {PAGE_DIR};\n"
        f'            add_header Content-Security-Policy "{PAGE_CSP}" always;\n'
        "            add_header Cache-Control no-store always;\n"
        "            add_header X-Content-Type-Options nosniff always;\n"
        "            add_header Referrer-Policy no-referrer always;\n"
        "            try_files /watch.html =404;\n"
    )
    serve = (
        f"            alias {config.hls_dir}/$lesson/$file;\n"
        "            add_header Cache-Control $media_cache always;\n"
        "            add_header Access-Control-Allow-Origin * always;\n"
    )
    return f"""\
load_module {RTMP_MODULE};
daemon off;
master_process off;
{user}pid {d / "nginx.pid"};
error_log {d / "error.log"} warn;
worker_rlimit_nofile {config.worker_connections * 2};
events {{ worker_connections {config.worker_connections}; }}
rtmp {{
    server {{
        listen {config.rtmp_listen};
        chunk_size 4096;
        application {APPLICATION} {{
            live on;
            record off;
            allow play 127.0.0.1;
            deny play all;
            notify_method post;
            on_publish http://127.0.0.1:{gate_port}/on-publish;
            hls on;
            hls_path {config.hls_dir};
            hls_nested on;
            hls_fragment {int(config.fragment_s * 1000)}ms;
            hls_playlist_length {int(config.playlist_s * 1000)}ms;
            hls_fragment_naming sequential;
            hls_cleanup on;
        }}
    }}
}}
http {{
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
        text/html html;
        application/javascript js;
    }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    server_tokens off;
    client_body_temp_path {d / "tmp"};
    proxy_temp_path {d / "tmp"};
    fastcgi_temp_path {d / "tmp"};
    uwsgi_temp_path {d / "tmp"};
    scgi_temp_path {d / "tmp"};
    # The playlist changes every fragment; a fragment never does (a CDN may keep it).
    map $uri $media_cache {{
        ~\\.m3u8$ "no-cache";
        default "public, max-age=60";
    }}
    server {{
        listen {config.http_listen};
        client_max_body_size 1k;
        if ($request_method !~ ^(GET|HEAD)$) {{ return 405; }}
        location = /healthz {{ return 200 "ok\\n"; }}
        location = /player/hls.light.min.js {{ alias {PLAYER_DIR / "hls.light.min.js"}; }}
        location = /player/watch.js {{ alias {PAGE_DIR / "watch.js"}; }}
        location ~ "^{signed}/$" {{
{check}{page}        }}
        location ~ "^{signed}/{media}$" {{
{check}{serve}        }}
        location ~ "^/lan/{lesson}/$" {{
{lan_check}{page}        }}
        location ~ "^/lan/{lesson}/{media}$" {{
{lan_check}{serve}        }}
        location / {{ return 404; }}
    }}
}}
"""


def _die_with_parent() -> None:
    """In the child before exec: nginx gets SIGTERM if the controller dies first."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def nginx_binary() -> str | None:
    """Debian's nginx, or None when it is not installed."""
    for path in ("/usr/sbin/nginx", "/usr/bin/nginx"):
        if os.access(path, os.X_OK):
            return path
    return None


def why_unavailable() -> str | None:
    """None when the origin can run here, else what to install."""
    missing = [] if nginx_binary() else ["nginx"]
    if not RTMP_MODULE.is_file():
        missing.append(f"libnginx-mod-rtmp ({RTMP_MODULE})")
    if not missing:
        return None
    return (
        f"the HLS origin needs {' and '.join(missing)}: apt-get install "
        "--no-install-recommends nginx libnginx-mod-rtmp (scripts/bootstrap)"
    )


class HlsOrigin:
    """The nginx process; ``start()`` (blocking, run it in a thread) and ``stop()``."""

    def __init__(self, config: OriginConfig) -> None:
        self.config = config
        self.conf_path = config.directory / "nginx.conf"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """nginx's process id while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether nginx is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """The end of nginx's error log."""
        path = self.config.directory / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def start(self, gate_port: int, timeout_s: float = 10.0) -> None:
        """Write the configuration, start nginx, return once both ports accept."""
        missing = why_unavailable()
        binary = nginx_binary()
        if missing is not None or binary is None:
            raise RuntimeError(missing)
        for sub in ("hls", "tmp"):
            (self.config.directory / sub).mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(render(self.config, gate_port))
        errors = self.config.directory / "error.log"
        check = subprocess.run(
            [binary, "-t", "-q", "-p", str(self.config.directory), "-c", str(self.conf_path),
             "-e", str(errors)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused {self.conf_path}: {check.stderr.strip()}")
        self._proc = subprocess.Popen(
            [binary, "-p", str(self.config.directory), "-c", str(self.conf_path),
             "-e", str(errors)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        pending = [_host_port(self.config.rtmp_listen, ""), _host_port(self.config.http_listen, "")]
        while pending:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"the HLS origin's nginx exited at start: {self.log()}")
            host, port = pending[0]
            host = "127.0.0.1" if host in ("0.0.0.0", "*") else host.strip("[]")
            try:
                with socket.create_connection((host, port), timeout=0.2):
                    pending.pop(0)
                    continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the HLS origin did not listen on {host}:{port} within {timeout_s} s: "
                    f"{self.log()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop nginx (fast shutdown)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
