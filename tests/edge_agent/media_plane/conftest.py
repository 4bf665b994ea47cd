"""A real Janus (benchlib's JanusServer, in a network namespace) with a lesson's room made
by the controller's own media plane, and synthetic classrooms that encode once.

Without /usr/bin/janus the live tests are skipped, saying why, unless CI is set: CI runs
scripts/test, which installs janus, so there a missing janus fails instead.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aioice.ice
import pytest
from agent_janus_fixtures import Lesson
from benchlib.janus import JanusServer
from media_plane_fixtures import SECRET, instance, plane_config

from controller.media_plane.plane import MediaPlane
from edge_agent.media.source_runner import SourceRunner
from protocols.media import aiortc_seam
from protocols.messages import JanusPlacement

JANUS = pathlib.Path("/usr/bin/janus")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture
async def start_lesson() -> AsyncIterator[Callable[..., Awaitable[Lesson]]]:
    """Start a real Janus and open a lesson's room on it through the controller's plane."""
    if not JANUS.exists():
        why = f"{JANUS} is missing: install it with scripts/bootstrap janus"
        if _in_ci():
            pytest.fail(why)
        pytest.skip(why)
    servers: list[JanusServer] = []
    planes: list[MediaPlane] = []
    # ICE gathers on the link to Janus's namespace only. Gathering is process-wide state: an
    # earlier test in this worker (an in-process agent daemon) may have pinned it to
    # loopback, where no candidate reaches Janus; the suite's order made that fail in CI.
    gather = aioice.ice.get_host_addresses

    async def start(bitrate: int = 0) -> Lesson:
        server = JanusServer(admin_secret=SECRET)
        servers.append(server)
        await server.start()
        aiortc_seam.pin_host_addresses([s.host_address for s in servers])
        plane = MediaPlane(plane_config({"county-a": instance(server)}))
        planes.append(plane)
        await plane.start()
        placed = await plane.rooms.open(f"lesson-{len(servers)}")
        assert placed.api_url is not None and placed.room is not None
        if bitrate:
            # A cap on publishers' video, which Janus announces to them by REMB.
            await plane.clients["county-a"].videoroom(
                {
                    "request": "edit",
                    "room": placed.room,
                    "secret": placed.secret,
                    "new_bitrate": bitrate,
                }
            )
        placement = JanusPlacement(api_url=placed.api_url, room=placed.room, pin=placed.pin)
        return Lesson(server, placement)

    try:
        yield start
    finally:
        aioice.ice.get_host_addresses = gather
        for plane in planes:
            await plane.stop()
        for server in servers:
            await server.stop()


@pytest.fixture
def runners() -> Iterator[list[SourceRunner]]:
    """Sources a test starts; all stopped after it."""
    started: list[SourceRunner] = []
    yield started
    for runner in started:
        runner.stop()
