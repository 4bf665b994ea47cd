"""Real Janus instances for the media plane's tests, each in a network namespace of its
own (benchlib's JanusServer), with the admin API on and an admin secret.

Without /usr/bin/janus the live tests are skipped, saying why, unless CI is set: CI runs
scripts/test, which installs janus, so there a missing janus fails instead.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import AsyncIterator

import pytest
from benchlib.janus import JanusServer
from media_plane_fixtures import SECRET, StartJanus

JANUS = pathlib.Path("/usr/bin/janus")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture
async def start_janus() -> AsyncIterator[StartJanus]:
    """Start as many real Janus servers as a test asks for; all are stopped after it."""
    if not JANUS.exists():
        why = f"{JANUS} is missing: install it with scripts/bootstrap janus"
        if _in_ci():
            pytest.fail(why)
        pytest.skip(why)
    servers: list[JanusServer] = []

    async def start(admin_secret: str = SECRET, conncheck: bool = True) -> JanusServer:
        server = JanusServer(admin_secret=admin_secret, conncheck=conncheck)
        servers.append(server)
        await server.start()
        return server

    yield start
    for server in servers:
        await server.stop()
