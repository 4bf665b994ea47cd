"""Several controller processes on one PostgreSQL database, for the cluster tests and
``scripts/bench-control-plane --controllers 2``.

Every controller gets its own state directory, ports and log, but the same CURVE key
pair and TLS material (copied from the first, as an operator copies them to each
machine), so an agent enrolled with one is admitted by all.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import signal
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from benchlib.ports import free_port_pair
from benchlib.rig import BIN, VERBOSE, LessonRig, RigError
from protocols.tls import pinned_client_context

SHARED = ("controller.curve", "tls")


@dataclass
class Member:
    """One controller of the cluster."""

    name: str
    state: pathlib.Path
    port: int
    http_port: int

    @property
    def endpoint(self) -> str:
        """Its control socket, as agents dial it."""
        return f"tcp://127.0.0.1:{self.port}"


class ClusterRig(LessonRig):
    """A ``LessonRig`` whose controller is several processes sharing ``database``."""

    def __init__(self, database: str, count: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.database = database
        self.members = [
            Member(f"controller-{chr(ord('a') + i)}", self.root / f"controller-{i}", 0, 0)
            for i in range(count)
        ]
        self.members[0].state = self.controller_state
        self.members[0].port, self.members[0].http_port = self.port, self.http_port
        for m in self.members[1:]:
            m.port, m.http_port = free_port_pair(), free_port_pair()

    def controller_cli(self, *args: str, check: bool = True) -> Any:
        """``classroom-controller`` against the shared database."""
        return self.cli(
            "classroom-controller",
            *args,
            "--state-dir",
            str(self.controller_state),
            "--database",
            self.database,
            check=check,
        )

    def endpoints(self) -> list[str]:
        """Every member's control endpoint, in order."""
        return [m.endpoint for m in self.members]

    def start_member(self, member: Member, extra: tuple[str, ...] = ()) -> None:
        """Start one controller process and wait until its API answers."""
        if member.state != self.controller_state:
            member.state.mkdir(parents=True, exist_ok=True)
            for name in SHARED:
                src, dst = self.controller_state / name, member.state / name
                if src.is_dir() and not dst.exists():
                    shutil.copytree(src, dst)
                elif src.is_file() and not dst.exists():
                    shutil.copy2(src, dst)
        args = [
            str(BIN / "classroom-controller"),
            "serve",
            "--state-dir",
            str(member.state),
            "--database",
            self.database,
            "--port",
            str(member.port),
            "--http-port",
            str(member.http_port),
            "--heartbeat",
            str(self.heartbeat_s),
            "--prepare",
            str(self.prepare_s),
        ]
        for endpoint in self.endpoints():
            args += ["--agent-endpoint", endpoint]
        self.spawn(member.name, *args, *extra, *VERBOSE)
        self.wait(f"{member.name}'s API", lambda: self.member_get(member, "/../../healthz"), 60)

    def start_controller(self) -> None:
        """Start every member, the first alone first (it makes the keys the others copy)."""
        if not self.api_token:
            self.controller_cli("user", "add", "rig", "--role", "admin", "--no-password")
            self.api_token = self.controller_cli("token", "create", "rig").stdout.strip()
        for member in self.members:
            self.start_member(member)
        self.procs["controller"] = self.procs[self.members[0].name]

    def _context(self) -> ssl.SSLContext:
        return pinned_client_context((self.controller_state / "tls" / "ca.pem").read_text())

    def member_get(self, member: Member, path: str, timeout: float = 10) -> Any:
        """GET ``/api/v1{path}`` from one member (None on a connection error)."""
        origin = f"https://127.0.0.1:{member.http_port}"
        url = (
            f"{origin}/{path.removeprefix('/../../')}"
            if path.startswith("/../../")
            else f"{origin}/api/v1{path}"
        )
        request = urllib.request.Request(url, headers=self.auth_headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._context()) as r:
                body = r.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        return json.loads(body) if body.lstrip().startswith(("{", "[")) else body

    def member_post(
        self, member: Member, path: str, doc: dict[str, Any], timeout: float, method: str = "POST"
    ) -> Any:
        """POST (or ``method``) JSON to one member; (status, body)."""
        url = f"https://127.0.0.1:{member.http_port}/api/v1{path}"
        request = urllib.request.Request(
            url,
            data=json.dumps(doc).encode(),
            headers={**self.auth_headers, "Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._context()) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def is_leader(self, member: Member) -> bool | None:
        """Whether the member says it leads (its metrics), None if it does not answer."""
        text = self.member_get(member, "/metrics")
        if not isinstance(text, str):
            return None
        for line in text.splitlines():
            if line.startswith("classbridge_orchestrator_leader "):
                return float(line.split()[1]) == 1.0
        return None

    def leader(self, timeout: float = 30) -> Member:
        """The member that leads (waiting for one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for member in self.members:
                if member.name in self.procs and self.is_leader(member):
                    return member
            time.sleep(0.2)
        raise RigError(f"no controller became leader within {timeout:.0f} s")

    def kill_member(self, member: Member) -> None:
        """SIGKILL one controller (no goodbye: its sessions simply end)."""
        if self.procs.get("controller") is self.procs.get(member.name):
            self.procs.pop("controller", None)
        self.kill(member.name, signal.SIGKILL)

    def get(self, path: str) -> Any:
        """GET from the first member still running."""
        for member in self.members:
            if member.name in self.procs:
                doc = self.member_get(member, path)
                if doc is not None:
                    return doc
        raise RigError(f"no controller answered GET {path}")
