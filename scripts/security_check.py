"""What a 等保 level-3 assessor checks first, measured on a running controller.

Starts a real controller (``benchlib.rig``: its own state directory, its county CA) and
probes it from outside, the way a scanner on the school network would:

- ``tls``: HTTPS answers with the county CA pinned, and plain HTTP to the same port gets
  no HTTP answer (the API, console, patrol signalling and uploads share that listener);
- ``systemd_exposure_controller`` / ``_agent``: ``systemd-analyze security --offline``
  of the shipped units (None where systemd-analyze is missing);
- ``unaudited_routes``: personal-data GET routes whose read left no audit row (each is
  read with a nonce, then the audit log is searched for it);
- ``preauth_body_limit_bytes``: the most any route lets a client send before it knows
  who is sending: every non-GET route is offered a 100 MB body without credentials, and
  the limit its 413 names is taken (a route that asks who it is first reads nothing);
- ``zmq_max_msg_bytes``: the largest control-plane message a socket accepts; the
  enrolment socket (open to any key) is probed with a message one byte over its limit,
  which must make ZeroMQ hang up on the sender.

Targets: tls true, both exposures ≤ 4.0, unaudited_routes 0, body limit ≤ 1 MiB,
ZeroMQ ≤ 4 MiB. ``--json`` ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import socket
import ssl
import sys
import tempfile
import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

from benchlib.rig import LessonRig  # noqa: E402
from securitylib.systemd_exposure import exposure_figures  # noqa: E402

from controller.app.http_api import HttpApi  # noqa: E402
from controller.auth.audit_check import unaudited_routes  # noqa: E402
from controller.tls.probe import probe_tls  # noqa: E402
from protocols.envelope import MAX_ENROL_MESSAGE_BYTES, MAX_MESSAGE_BYTES  # noqa: E402

OFFERED = 100 * 1024 * 1024  # the body a client claims to send
TARGETS = {
    "systemd_exposure_controller": 4.0,
    "systemd_exposure_agent": 4.0,
    "preauth_body_limit_bytes": 1024 * 1024,
    "zmq_max_msg_bytes": 4 * 1024 * 1024,
}


def write_routes() -> list[tuple[str, str]]:
    """Every (method, path pattern) of the controller's HTTP API other than GET/HEAD."""
    from controller.agents.keys import ServerKeys
    from controller.db.session import database_url, make_engine, migrate, sessions
    from controller.recordings.uploads import UploadService
    from controller.storage.local import LocalStorage

    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        url = database_url(root)
        migrate(url)
        db = sessions(make_engine(url))
        api = HttpApi(
            db,
            UploadService(db, LocalStorage(root / "storage"), lambda *_: None),
            ServerKeys.load_or_create(root),
            lambda: [],
        )
        out = set()
        for route in api.app.router.routes():
            if route.method in ("GET", "HEAD", "*") or route.resource is None:
                continue
            out.add((route.method, route.resource.canonical))
    return sorted(out)


def _fill(pattern: str) -> str:
    import re

    return re.sub(r"\{[^}]+\}", "probe", pattern)


def preauth_limit(host: str, port: int, context: ssl.SSLContext) -> tuple[int, list[str]]:
    """The largest body any write route takes before authentication, and any route that
    read more than its 413 said (or answered nothing)."""
    largest = 0
    problems = []
    for method, pattern in write_routes():
        path = _fill(pattern)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {OFFERED}\r\nConnection: close\r\n\r\n"
        ).encode()
        with (
            socket.create_connection((host, port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=host) as sock,
        ):
            sock.sendall(head + b"{")  # one byte of the body: the rest is never sent
            answer = b""
            try:
                while b"\r\n\r\n" not in answer or len(answer) < 64:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            except (TimeoutError, ssl.SSLError, OSError):
                pass
        status_line = answer.split(b"\r\n", 1)[0].decode(errors="replace")
        parts = status_line.split(" ")
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if status == 413:
            body = answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""
            try:
                limit = int(json.loads(body.decode()).get("limit", 0))
            except (ValueError, AttributeError):
                limit = 0
            largest = max(largest, limit)
        elif status in (401, 403):
            continue  # asked who is sending before reading a byte of the body
        else:
            problems.append(f"{method} {pattern}: {status_line or 'no answer'}")
    return largest, problems


def zmq_limit_holds(host: str, enrol_port: int, server_public: bytes) -> bool:
    """Whether the enrolment socket hangs up on a message one byte over its limit (and
    keeps a sender of a small one)."""

    def hung_up(size: int) -> bool:
        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.DEALER)
        public, secret = zmq.curve_keypair()
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = (
            server_public,
            public,
            secret,
        )
        sock.linger = 0
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        try:
            sock.connect(f"tcp://{host}:{enrol_port}")
            events: list[int] = []
            deadline = time.monotonic() + 5
            while zmq.EVENT_HANDSHAKE_SUCCEEDED not in events and time.monotonic() < deadline:
                if monitor.poll(200):
                    events.append(recv_monitor_message(monitor)["event"])
            sock.send(b"x" * size)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                if (
                    monitor.poll(200)
                    and recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
                ):
                    return True
            return False
        finally:
            sock.disable_monitor()
            monitor.close()
            sock.close()

    return hung_up(MAX_ENROL_MESSAGE_BYTES + 1) and not hung_up(1024)


def run() -> dict[str, Any]:
    """Start a controller, probe it, stop it."""
    rig = LessonRig()
    try:
        rig.start_controller()
        host, port = "127.0.0.1", rig.http_port
        seen = probe_tls(rig.base, rig.trust_pem)
        limit, body_problems = preauth_limit(host, port, rig.ssl_context())
        missing = unaudited_routes(rig.base, rig.api_token, ssl_context=rig.ssl_context())
        public = (rig.controller_state / "controller.curve").read_bytes().split(b"\n")[0]
        zmq_ok = zmq_limit_holds(host, rig.port + 1, public)
        doc: dict[str, Any] = {
            "tls": seen.required,
            "tls_detail": seen.detail,
            **exposure_figures(),
            "unaudited_routes": len(missing),
            "unaudited_route_list": missing,
            "preauth_body_limit_bytes": limit,
            "preauth_body_problems": body_problems,
            # The control socket's limit (enrolled agents) is the larger of the two.
            "zmq_max_msg_bytes": max(MAX_MESSAGE_BYTES, MAX_ENROL_MESSAGE_BYTES),
            "zmq_enrol_max_msg_bytes": MAX_ENROL_MESSAGE_BYTES,
            "zmq_limit_enforced": zmq_ok,
        }
    finally:
        rig.stop()
    return doc


def verdicts(doc: dict[str, Any]) -> dict[str, bool]:
    """Each target met or not."""
    out = {"tls": doc.get("tls") is True, "unaudited_routes": doc.get("unaudited_routes") == 0}
    for key, limit in TARGETS.items():
        value = doc.get(key)
        out[key] = value is not None and value <= limit
    out["preauth_body_problems"] = not doc.get("preauth_body_problems")
    out["zmq_limit_enforced"] = doc.get("zmq_limit_enforced") is True
    return out


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()
    doc = run()
    doc["targets_met"] = verdicts(doc)
    for key, value in doc.items():
        if key != "targets_met":
            print(f"{key:>30}: {value}")
    missed = [k for k, ok in doc["targets_met"].items() if not ok]
    print(f"{'targets':>30}: {'all met' if not missed else 'missed ' + ', '.join(missed)}")
    if args.json:
        print(json.dumps(doc))
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
