"""A lesson on Janus survives the leader's death: two real controller processes on
PostgreSQL, a real Janus, and two real synthetic agents. The leader is SIGKILLed
mid-lesson; the new leader adopts the lesson's stored room (the agents are not moved),
and the lesson is recorded, uploaded, and its room destroyed at its end."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from benchlib.cluster_rig import ClusterRig
from benchlib.janus import JanusServer
from media_plane_fixtures import SECRET, instance, plane_config

from controller.media_plane.janus_api import JanusClient

# Two controllers, two full agents and a Janus: alone, in phase 2.
pytestmark = [pytest.mark.solo, pytest.mark.janus, pytest.mark.timeout(240)]
JANUS = pathlib.Path("/usr/bin/janus")
LEAD, RECEIVER = "city-1-101", "village-1-201"


@pytest.fixture
def janus_cluster(pg_url: str, tmp_path: pathlib.Path) -> Iterator[tuple[ClusterRig, JanusServer]]:
    """Two controllers on ``pg_url`` whose media plane is one real Janus."""
    if not JANUS.exists():
        pytest.skip(f"{JANUS} is missing: install it with scripts/bootstrap janus")
    server = JanusServer(admin_secret=SECRET)
    asyncio.run(server.start())
    rig = ClusterRig(pg_url, count=2, root=tmp_path / "rig", heartbeat_s=1.0, prepare_s=1.0)
    rig.media_addresses += [server.host_address]
    plane = tmp_path / "media-plane.toml"
    table = instance(server)
    plane.write_text(
        '[media_plane]\nbackend = "janus"\npoll_interval_s = 0.5\n'
        f'[janus.county-a]\napi_url = "{table["api_url"]}"\n'
        f'admin_url = "{table["admin_url"]}"\nadmin_secret = "{SECRET}"\ncapacity = 4\n'
    )
    plane.chmod(0o600)
    try:
        rig.controller_cli("user", "add", "rig", "--role", "admin", "--no-password")
        rig.api_token = rig.controller_cli("token", "create", "rig").stdout.strip()
        for member in rig.members:
            rig.start_member(member, ("--media-plane", str(plane)))
        rig.procs["controller"] = rig.procs[rig.members[0].name]
        yield rig, server
    finally:
        rig.stop()
        asyncio.run(server.stop())


async def _rooms(server: JanusServer) -> list[int]:
    client = JanusClient(plane_config({"probe": instance(server)}).instances[0], 2.0)
    await client.start()
    try:
        listing = await client.videoroom({"request": "list"})
    finally:
        await client.stop()
    return sorted(int(r["room"]) for r in listing.get("list") or [])


async def test_a_new_leader_keeps_the_lesson_in_its_room(
    janus_cluster: tuple[ClusterRig, JanusServer],
) -> None:
    rig, server = janus_cluster
    leader = await asyncio.to_thread(rig.leader)
    follower = next(m for m in rig.members if m is not leader)
    for cid in (LEAD, RECEIVER):
        token = await asyncio.to_thread(rig.add_classroom, cid)
        await asyncio.to_thread(rig.enrol_and_start_agent, cid, token, controller=leader.endpoint)
    await asyncio.to_thread(rig.wait_online, [LEAD, RECEIVER], 60)
    lesson = await asyncio.to_thread(rig.schedule, LEAD, [RECEIVER], 2.0, 20.0)
    lesson_id = lesson["id"]

    def events() -> list[str]:
        doc = rig.member_get(follower, f"/lessons/{lesson_id}") or {}
        return [str(e["detail"]) for e in doc.get("events", [])]

    def state() -> str:
        doc = rig.member_get(follower, f"/lessons/{lesson_id}") or {}
        return str(doc.get("state"))

    await asyncio.to_thread(rig.wait, "the lesson live", lambda: state() == "live", 60)
    before = await _rooms(server)
    assert len(before) == 1, before
    await asyncio.to_thread(rig.kill_member, leader)
    assert await asyncio.to_thread(rig.leader, 60) is follower
    await asyncio.to_thread(
        rig.wait, "the room kept", lambda: any("kept from before" in e for e in events()), 30
    )
    assert await _rooms(server) == before  # the same room: nobody moved

    def done() -> Any:
        doc = rig.member_get(follower, f"/lessons/{lesson_id}") or {}
        return doc if doc.get("state") in ("uploaded", "failed") else None

    doc = await asyncio.to_thread(rig.wait, "the lesson uploaded", done, 120)
    said = [str(e["detail"]) for e in doc["events"]]
    assert doc["state"] == "uploaded", said
    assert not any("moves to room" in e for e in said), said
    assert {r["classroom"] for r in doc["recordings"]} == {LEAD, RECEIVER}
    assert await _rooms(server) == []  # destroyed at its end by the new leader
