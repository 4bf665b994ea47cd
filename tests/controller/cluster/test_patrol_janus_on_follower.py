"""Patrol of a lesson on Janus through a controller that does not lead: two real
controller processes on PostgreSQL placing lessons on a real Janus, two real synthetic
agents publishing into the room, and a viewer opened, answered and hung up through the
follower while the leader holds its Janus subscription."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator
from typing import Any

import aioice.ice
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from benchlib.cluster_rig import ClusterRig
from benchlib.janus import JanusServer
from media_plane_fixtures import SECRET, instance

from protocols.media import aiortc_seam

# Two controllers, two full agents and a Janus: alone, in phase 2.
pytestmark = [pytest.mark.solo, pytest.mark.janus, pytest.mark.timeout(240)]
JANUS = pathlib.Path("/usr/bin/janus")
LEAD, RECEIVER = "city-1-101", "village-1-201"
TEACHER = {"classroom": LEAD, "track": "teacher", "kind": "video"}


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


async def test_a_follower_opens_answers_and_hangs_up_a_janus_viewer_held_by_the_leader(
    janus_cluster: tuple[ClusterRig, JanusServer],
) -> None:
    rig, server = janus_cluster
    leader = await asyncio.to_thread(rig.leader)
    follower = next(m for m in rig.members if m is not leader)
    for cid in (LEAD, RECEIVER):
        token = await asyncio.to_thread(rig.add_classroom, cid)
        await asyncio.to_thread(rig.enrol_and_start_agent, cid, token, controller=leader.endpoint)
    await asyncio.to_thread(rig.wait_online, [LEAD, RECEIVER], 60)
    lesson = await asyncio.to_thread(rig.schedule, LEAD, [RECEIVER], 2.0, 120.0)
    lesson_id = lesson["id"]

    def in_room() -> Any:
        for x in rig.member_get(follower, "/live"):
            if x["id"] == lesson_id and x.get("backend") == "janus":
                return any(f["classroom"] == LEAD and f["track"] == "teacher" for f in x["feeds"])
        return False

    await asyncio.to_thread(rig.wait, "the Janus lesson in the follower's /live", in_room, 60)

    async def post(path: str, doc: dict[str, Any], method: str = "POST") -> tuple[int, Any]:
        result: tuple[int, Any] = await asyncio.to_thread(
            rig.member_post, follower, f"/lessons/{lesson_id}{path}", doc, 30, method
        )
        return result

    status, offer = await post("/watch", {"feeds": [TEACHER]})
    assert status == 201 and offer["type"] == "offer", offer
    viewer = offer["viewer"]
    # This process's ICE gathers on the link to Janus's namespace only, as the agents'
    # does (gathering on every interface, the first frame once took over 15 s to come).
    gather = aioice.ice.get_host_addresses
    aiortc_seam.pin_host_addresses([server.host_address])
    pc = RTCPeerConnection()
    try:
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        [transceiver] = [t for t in pc.getTransceivers() if t.mid == offer["mids"][0]]
        await pc.setLocalDescription(await pc.createAnswer())
        status, said = await post(f"/watch/{viewer}/answer", {"sdp": pc.localDescription.sdp})
        assert status == 200, said
        frame = await asyncio.wait_for(transceiver.receiver.track.recv(), 20)
        assert frame.width > 0  # the lead's camera, from Janus, through no controller
        # Answered twice: refused by the leader, which holds the viewer.
        status, said = await post(f"/watch/{viewer}/answer", {"sdp": pc.localDescription.sdp})
        assert status == 400 and "answered already" in said["error"], said
        status, said = await post(f"/watch/{viewer}", {}, "DELETE")
        assert status == 200, said
    finally:
        await pc.close()
        aioice.ice.get_host_addresses = gather
    status, said = await post(f"/watch/{viewer}/answer", {"sdp": "v=0\r\nm=video 9 RTP/AVP 0\r\n"})
    assert status == 404, said

    def audited() -> Any:
        rows = rig.member_get(follower, "/audit?limit=200") or []
        mine = [r for r in rows if (r.get("detail") or {}).get("viewer") == viewer]
        opened = [r for r in mine if r["action"] == "watch"]
        ended = [r for r in mine if r["action"] == "watch_end"]
        return (opened, ended) if opened and ended else None

    opened, ended = await asyncio.to_thread(rig.wait, "watch and watch_end audited", audited, 15)
    assert opened[0]["detail"]["backend"] == "janus"
    assert ended[0]["detail"]["ended_by"] == "rig" and ended[0]["detail"]["duration_s"] > 0
