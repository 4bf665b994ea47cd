"""A lesson rig whose controller places lessons on real Janus servers (issue 13).

Shared by the demo (``scripts/demo --media-plane janus``), the fault suite and the
end-to-end tests that run on both media backends: they start ``JanusServer``s (each in a
network namespace, so it needs root and Debian's ``janus``), write the controller's
``--media-plane`` file naming them, and let the agents' ICE reach them over their links.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import secrets
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchlib.janus import JanusServer
from benchlib.rig import LessonRig

JANUS = pathlib.Path("/usr/bin/janus")
BACKENDS = ("builtin", "janus")
# Fast health polls, so an instance that dies or stops answering is declared down within
# about 2 s (the sample's production settings take up to 8 s).
FAST_PLANE: dict[str, Any] = {
    "poll_interval_s": 0.5,
    "request_timeout_s": 0.5,
    "down_after_failures": 2,
}


def missing() -> str | None:
    """What this machine lacks to run Janus servers, or None when nothing is missing."""
    if shutil.which("janus") is None:
        return "the janus program is missing: install it with scripts/bootstrap janus"
    if shutil.which("ip") is None:
        return "the ip program (iproute2) is missing: install it with scripts/bootstrap janus"
    if os.geteuid() != 0:
        return "Janus runs in a network namespace of its own, which needs root: run as root"
    return None


def instance_table(server: JanusServer, capacity: int = 4) -> dict[str, Any]:
    """The ``[janus.NAME]`` table naming ``server`` (started with an admin secret)."""
    return {
        "api_url": server.url,
        "admin_url": server.admin_url,
        "admin_secret": server.admin_secret or "",
        "capacity": capacity,
    }


def write_plane_file(
    path: pathlib.Path, instances: dict[str, dict[str, Any]], **plane: Any
) -> pathlib.Path:
    """Write a janus ``--media-plane`` file (mode 600: it holds admin secrets)."""
    settings = {"backend": "janus", **FAST_PLANE, **plane}
    lines = ["[media_plane]", *(f"{k} = {_toml(v)}" for k, v in settings.items())]
    for name, table in instances.items():
        lines += [f"[janus.{name}]", *(f"{k} = {_toml(v)}" for k, v in table.items())]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def use_janus(rig: LessonRig, servers: dict[str, JanusServer], **plane: Any) -> None:
    """Make ``rig``'s controller (when it next starts) place lessons on ``servers``, and
    its agents reach them; call before ``start_controller`` and the agents' start."""
    path = write_plane_file(
        rig.root / "media-plane.toml",
        {name: instance_table(server) for name, server in servers.items()},
        **plane,
    )
    rig.controller_args += ["--media-plane", str(path)]
    rig.media_addresses += [server.host_address for server in servers.values()]


class JanusFarm:
    """Janus servers started on demand (each in its own namespace); ``stop`` ends them."""

    def __init__(self) -> None:
        self.servers: list[JanusServer] = []

    def start(self) -> JanusServer:
        """Start one more server with a random admin secret; wait until its API answers."""
        server = JanusServer(admin_secret=secrets.token_urlsafe(18))
        self.servers.append(server)
        asyncio.run(server.start())
        return server

    def stop(self) -> None:
        """Stop every server (a stopped one is let go on first) and drop its namespace."""
        for server in self.servers:
            if server.proc is not None and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)
            asyncio.run(server.stop())
        self.servers.clear()


@contextmanager
def janus_farm() -> Iterator[JanusFarm]:
    """A ``JanusFarm`` whose servers are all stopped on leaving, whatever happened."""
    farm = JanusFarm()
    try:
        yield farm
    finally:
        farm.stop()


def placed_on(doc: dict[str, Any]) -> list[str]:
    """The lesson's events saying where the media plane put its room (or moved it)."""
    events = [str(e["detail"]) for e in doc["events"]]
    return [e for e in events if "on Janus instance" in e or "moves to room" in e]
