"""A lesson whose rooms are held by different controllers: the leader relays it, and the
agent held by the other controller gets its media answer from the leader through the
router. Two real controller processes on PostgreSQL and two real synthetic agents."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from benchlib.cluster_rig import ClusterRig

# Two controllers and two full agents: alone, in phase 2.
pytestmark = [pytest.mark.solo, pytest.mark.timeout(240)]
LEAD, RECEIVER = "city-1-101", "village-1-201"


def _media(rig: ClusterRig) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
    rooms = rig.get("/classrooms")
    return {
        r["id"]: {(m["track"], m["direction"]): m for m in (r["health"] or {}).get("media", [])}
        for r in rooms
    }


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
    lesson = await asyncio.to_thread(rig.schedule, LEAD, [RECEIVER], 4.0, 30.0)
    await asyncio.to_thread(rig.wait_lesson, lesson["id"], ("live",), 60)

    def flowing() -> bool:
        media = _media(rig)
        lead, receiver = media.get(LEAD, {}), media.get(RECEIVER, {})
        return (
            (lead.get(("teacher", "send")) or {}).get("fps", 0) > 15
            and (lead.get((f"{RECEIVER}-student", "recv")) or {}).get("fps", 0) > 15
            and (receiver.get((f"{LEAD}-teacher", "recv")) or {}).get("fps", 0) > 15
        )

    await asyncio.to_thread(rig.wait, "media both ways through the leader's relay", flowing, 25)
    metrics = await asyncio.to_thread(rig.member_get, follower, "/metrics")
    assert "classbridge_routed_commands_total" in metrics
