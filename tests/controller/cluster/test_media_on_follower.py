"""A lesson whose rooms are held by different controllers: the leader relays it, and the
agent held by the other controller gets its media answer from the leader through the
router. When the leader is killed mid-lesson, the other takes the lesson over and the
media flows again through its relay. Two real controller processes on PostgreSQL and two
real synthetic agents."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from benchlib.cluster_rig import ClusterRig, Member

# Two controllers and two full agents: alone, in phase 2.
pytestmark = [pytest.mark.solo, pytest.mark.timeout(240)]
LEAD, RECEIVER = "city-1-101", "village-1-201"


def _flowing(rig: ClusterRig, member: Member, beat_after: datetime | None = None) -> bool:
    """The lead's camera sent, and each room receiving the other's camera, at over 15 fps,
    in heartbeats written after ``beat_after`` (a figure is the last second's)."""
    rooms = {r["id"]: r for r in rig.member_get(member, "/classrooms")}
    for cid, track, direction in (
        (LEAD, "teacher", "send"),
        (LEAD, f"{RECEIVER}-student", "recv"),
        (RECEIVER, f"{LEAD}-teacher", "recv"),
    ):
        room = rooms.get(cid) or {}
        seen = room.get("last_seen_at")
        if beat_after is not None and (not seen or datetime.fromisoformat(seen) <= beat_after):
            return False
        media = (room.get("health") or {}).get("media", [])
        fps = next(
            (
                m.get("fps") or 0
                for m in media
                if (m["track"], m["direction"]) == (track, direction)
            ),
            0,
        )
        if fps <= 15:
            return False
    return True


async def test_media_flows_both_ways_when_the_lead_is_held_by_the_follower(
    cluster: ClusterRig,
) -> None:
    rig = cluster
    leader = await asyncio.to_thread(rig.leader)
    follower = next(m for m in rig.members if m is not leader)
    # The lead room on the controller that does not lead (so it cannot relay), the
    # receiving room on the leader.
    for cid, member in ((LEAD, follower), (RECEIVER, leader)):
        token = await asyncio.to_thread(rig.add_classroom, cid)
        await asyncio.to_thread(rig.enrol_and_start_agent, cid, token, controller=member.endpoint)
    await asyncio.to_thread(rig.wait_online, [LEAD, RECEIVER], 60)
    lesson = await asyncio.to_thread(rig.schedule, LEAD, [RECEIVER], 4.0, 90.0)
    await asyncio.to_thread(rig.wait_lesson, lesson["id"], ("live",), 60)

    await asyncio.to_thread(
        rig.wait, "media both ways through the leader's relay", lambda: _flowing(rig, leader), 25
    )
    metrics = await asyncio.to_thread(rig.member_get, follower, "/metrics")
    assert "classbridge_routed_commands_total" in metrics
    await _patrol_through(rig, follower, lesson["id"])

    # The leader dies mid-lesson: the follower leads, the receiving room moves to it, and
    # both rooms' media flows through the new leader's relay.
    await asyncio.to_thread(rig.kill_member, leader)
    killed, killed_at = time.monotonic(), datetime.now(UTC)
    settle = killed_at.timestamp() + 2.0  # a heartbeat's last second after the relay died
    await asyncio.to_thread(
        rig.wait,
        "media both ways again through the new leader's relay",
        lambda: _flowing(rig, follower, datetime.fromtimestamp(settle, UTC)),
        30,
    )
    took = time.monotonic() - killed
    print(f"media again {took:.1f} s after the leader was killed")
    assert took < 20, f"media flowed again only {took:.1f} s after the leader was killed"
    doc = await asyncio.to_thread(rig.member_get, follower, f"/lessons/{lesson['id']}")
    assert doc["state"] == "live", doc["events"][-5:]


async def _patrol_through(rig: ClusterRig, member: Member, lesson_id: str) -> None:
    """An inspector's console on a controller that does not relay: the live list, a
    viewer whose frames arrive from the leader's relay, and its hang-up, all through it."""
    live = await asyncio.to_thread(rig.member_get, member, "/live")
    [doc] = [x for x in live if x["id"] == lesson_id]
    assert {(f["classroom"], f["track"]) for f in doc["feeds"]} >= {(LEAD, "teacher")}
    pc = RTCPeerConnection()
    got: asyncio.Queue[Any] = asyncio.Queue()
    pc.on("track", got.put_nowait)
    pc.addTransceiver("video", direction="recvonly")
    try:
        await pc.setLocalDescription(await pc.createOffer())
        body = {
            "sdp": pc.localDescription.sdp,
            "feeds": [{"classroom": LEAD, "track": "teacher", "kind": "video"}],
        }
        status, answer = await asyncio.to_thread(
            rig.member_post, member, f"/lessons/{lesson_id}/watch", body, 30
        )
        assert status == 201, answer
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        track = await asyncio.wait_for(got.get(), 15)
        frame = await asyncio.wait_for(track.recv(), 15)
        assert frame.width > 0
        viewer = answer["viewer"]
        # Someone else's viewer: refused by the leader, which holds it.
        status, refused = await asyncio.to_thread(
            rig.member_post, member, f"/lessons/{lesson_id}/watch/v-nobody", {}, 30, "DELETE"
        )
        assert status == 404, refused
        status, closed = await asyncio.to_thread(
            rig.member_post, member, f"/lessons/{lesson_id}/watch/{viewer}", {}, 30, "DELETE"
        )
        assert status == 200, closed
    finally:
        await pc.close()

    def ended() -> bool:
        rows = rig.member_get(member, "/audit?action=watch_end") or []
        return any(r["detail"].get("viewer") == viewer for r in rows)

    await asyncio.to_thread(rig.wait, "the viewer's watch_end in the audit log", ended, 15)
