"""A lesson rig: a controller and synthetic classroom agents as real processes on loopback.

Used by the demo, the end-to-end tests and the benchmarks, so all three exercise exactly
what a deployment runs: the console scripts, their sockets and their state directories.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from benchlib.ports import free_port_pair
from controller.tls.ca import spki_sha256_b64
from protocols.tls import pinned_client_context

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
SYNTHETIC = REPO / "hardware_profiles" / "synthetic.toml"
# CLASSBRIDGE_RIG_VERBOSE=1: the controller and agents log at DEBUG (every RTCP message).
VERBOSE = ["-v"] if os.environ.get("CLASSBRIDGE_RIG_VERBOSE") == "1" else []


class RigError(RuntimeError):
    """The rig could not reach the state it waited for."""


class LessonRig:
    """Starts and stops the processes; knows their ports and state directories."""

    def __init__(
        self,
        root: pathlib.Path | None = None,
        heartbeat_s: float = 1.0,
        prepare_s: float = 4.0,
        segment_seconds: float = 10.0,
        storage_url: str = "",
    ) -> None:
        self.segment_seconds = segment_seconds
        self.storage_url = storage_url
        self.agent_env: dict[str, dict[str, str]] = {}
        self.agent_prefix: dict[str, list[str]] = {}
        self.root = root or pathlib.Path(tempfile.mkdtemp(prefix="classbridge-demo-"))
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.controller_state = self.root / "controller"
        self.port = free_port_pair()
        self.http_port = free_port_pair()
        self.heartbeat_s = heartbeat_s
        self.prepare_s = prepare_s
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.api_token = ""  # an admin API token, made on the first start_controller
        self.controller_args: list[str] = []  # more ``serve`` options (e.g. --hls-origin)
        # Agents' ICE host addresses: loopback reaches the built-in relay; a Janus in a
        # network namespace needs its link's address too (benchlib.janus).
        self.media_addresses: list[str] = ["127.0.0.1"]

    @property
    def base(self) -> str:
        """The controller's HTTPS origin (console, API, uploads)."""
        return f"https://127.0.0.1:{self.http_port}"

    @property
    def api(self) -> str:
        """Base URL of the controller's JSON API."""
        return f"{self.base}/api/v1"

    @property
    def trust_pem(self) -> str:
        """The county CA the controller made on its first start (OSError before that)."""
        return (self.controller_state / "tls" / "ca.pem").read_text()

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this rig's controller only."""
        return pinned_client_context(self.trust_pem)

    def server_spki(self) -> str:
        """Base64 SHA-256 of the controller's server key (Chromium's pinning flag)."""
        return spki_sha256_b64((self.controller_state / "tls" / "server.pem").read_bytes())

    def cli(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``classroom-controller`` or ``classroom-agent`` and capture its output."""
        out = subprocess.run(
            [str(BIN / program), *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        if check and out.returncode != 0:
            raise RigError(f"{program} {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
        return out

    def controller_cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``classroom-controller`` against this rig's state directory."""
        return self.cli(
            "classroom-controller", *args, "--state-dir", str(self.controller_state), check=check
        )

    def spawn(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process with its output in logs/<name>.log."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        # A group of its own: a wrapper (faketime, unshare) may not pass a signal on to the
        # program it started, so signals go to the whole group.
        proc = subprocess.Popen(
            args,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        self.procs[name] = proc
        return proc

    def start_controller(self) -> None:
        """Start the controller and wait until its API answers; the first time, make an
        admin API token (the CLI works on the state directory) for ``get``."""
        if not self.api_token:
            self.controller_cli("user", "add", "rig", "--role", "admin", "--no-password")
            self.api_token = self.controller_cli("token", "create", "rig").stdout.strip()
        self.spawn(
            "controller",
            str(BIN / "classroom-controller"),
            "serve",
            "--state-dir",
            str(self.controller_state),
            "--port",
            str(self.port),
            "--http-port",
            str(self.http_port),
            "--heartbeat",
            str(self.heartbeat_s),
            "--prepare",
            str(self.prepare_s),
            *(["--storage", self.storage_url] if self.storage_url else []),
            *self.controller_args,
            *VERBOSE,
        )
        self.wait("the controller API", lambda: self.get("/../../healthz"), 30)

    def add_classroom(self, classroom_id: str, school: str = "") -> str:
        """Add a classroom; returns its enrolment token."""
        return self.controller_cli(
            "classroom", "add", classroom_id, "--school", school
        ).stdout.strip()

    def enrol_and_start_agent(
        self,
        classroom_id: str,
        token: str,
        profile: pathlib.Path = SYNTHETIC,
        controller: str | None = None,
    ) -> None:
        """Enrol an agent with the token (at ``controller``, by default the rig's) and
        start its daemon."""
        state = self.root / classroom_id
        self.cli(
            "classroom-agent",
            "enroll",
            "--controller",
            controller or f"tcp://127.0.0.1:{self.port}",
            "--token",
            token,
            "--state-dir",
            str(state),
        )
        self.start_agent(classroom_id, profile)

    def start_agent(self, classroom_id: str, profile: pathlib.Path = SYNTHETIC) -> None:
        """(Re)start an enrolled agent's daemon."""
        self.spawn(
            classroom_id,
            *self.agent_prefix.get(classroom_id, []),
            str(BIN / "classroom-agent"),
            "run",
            "--state-dir",
            str(self.root / classroom_id),
            "--profile",
            str(profile),
            *(arg for address in self.media_addresses for arg in ("--media-address", address)),
            "--segment-seconds",
            str(self.segment_seconds),
            *VERBOSE,
            env=self.agent_env.get(classroom_id),
        )

    def catalogue(self, lesson_id: str) -> Any:
        """The lesson's recording catalogue (coverage, gaps, segments) from the API."""
        return self.get(f"/lessons/{lesson_id}/recordings")

    @property
    def auth_headers(self) -> dict[str, str]:
        """Headers that call the API as the rig's admin."""
        return {"Authorization": f"Bearer {self.api_token}"} if self.api_token else {}

    def get(self, path: str) -> Any:
        """GET a JSON document from the API."""
        url = (
            self.api + path
            if not path.startswith("/../../")
            else (f"{self.base}/" + path.removeprefix("/../../"))
        )
        request = urllib.request.Request(url, headers=self.auth_headers)
        with urllib.request.urlopen(request, timeout=5, context=self.ssl_context()) as resp:
            return json.loads(resp.read())

    def put(self, path: str, doc: dict[str, Any]) -> Any:
        """PUT a JSON document to the API; returns the JSON answer."""
        request = urllib.request.Request(
            self.api + path,
            data=json.dumps(doc).encode(),
            method="PUT",
            headers={**self.auth_headers, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10, context=self.ssl_context()) as resp:
            return json.loads(resp.read())

    def wait(self, what: str, predicate: Any, timeout: float) -> Any:
        """Poll until ``predicate()`` is truthy; connection errors count as not yet."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = predicate()
                if value:
                    return value
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RigError(
                    f"timed out after {timeout:g} s waiting for {what}; logs in {self.logs}"
                )
            time.sleep(0.2)

    def wait_online(self, classrooms: list[str], timeout: float = 30) -> None:
        """Wait until every listed classroom is online."""
        self.wait(
            f"{', '.join(classrooms)} online",
            lambda: all(r["online"] for r in self.get("/classrooms") if r["id"] in classrooms),
            timeout,
        )

    def schedule(
        self,
        lead: str,
        receivers: list[str],
        lead_in_s: float,
        seconds: float,
        start: str | None = None,
    ) -> dict[str, Any]:
        """Schedule a lesson starting ``lead_in_s`` from now (or at ISO time ``start``)."""
        args = [
            "lesson",
            "add",
            "--lead",
            lead,
            "--start",
            start or f"+{lead_in_s:g}s",
            "--duration",
            f"{seconds:g}s",
            "--json",
        ]
        for r in receivers:
            args += ["--receiver", r]
        doc: dict[str, Any] = json.loads(self.controller_cli(*args).stdout)
        return doc

    def wait_lesson(self, lesson_id: str, states: tuple[str, ...], timeout: float) -> Any:
        """Wait until the lesson reaches one of ``states``; returns its document."""

        def reached() -> Any:
            doc = self.get(f"/lessons/{lesson_id}")
            return doc if doc["state"] in states else None

        return self.wait(f"lesson {lesson_id} to reach {'/'.join(states)}", reached, timeout)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one process (and whatever it started) and wait for it."""
        proc = self.procs.pop(name)
        _signal_group(proc, sig)
        proc.wait(timeout=20)
        _end_group(proc)

    def stop(self) -> None:
        """SIGTERM every process, then SIGKILL stragglers (and what they left behind)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
            _end_group(proc)
        self.procs.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group ``proc`` leads (``spawn`` made it one)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _end_group(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """Once ``proc`` has ended, give the rest of its group ``grace_s`` to end, then kill it."""
    deadline = time.monotonic() + grace_s
    while _group_alive(proc.pid):
        if time.monotonic() > deadline:
            _signal_group(proc, signal.SIGKILL)
            return
        time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies waiting to be reaped do not)."""
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:  # state ppid pgrp
            return True
    return False
