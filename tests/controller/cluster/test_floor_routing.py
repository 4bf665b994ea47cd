"""A floor change given at a controller that does not lead reaches every joined room,
whichever controller holds it: two real controllers on PostgreSQL, two real agent links."""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from benchlib.cluster_rig import ClusterRig

from protocols.messages import FloorState, JoinLesson

# Two controller processes and their timing: alone, in phase 2.
pytestmark = [pytest.mark.solo, pytest.mark.timeout(240)]


async def _until(what: str, predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def test_a_floor_change_at_the_other_controller_reaches_both_rooms(
    cluster: ClusterRig, agent_on: Callable[..., Awaitable[Any]], tmp_path: pathlib.Path
) -> None:
    rig = cluster
    leader = await asyncio.to_thread(rig.leader)
    other = next(m for m in rig.members if m is not leader)
    lead = await agent_on(rig, other, "floor-lead", tmp_path / "lead")
    far = await agent_on(rig, leader, "floor-far", tmp_path / "far")
    try:
        lesson = await asyncio.to_thread(rig.schedule, "floor-lead", ["floor-far"], 2, 60)
        for agent in (lead, far):
            await _until(
                "the join",
                lambda a=agent: any(isinstance(c.body, JoinLesson) for c in a.commands),
                30,
            )
        await asyncio.to_thread(rig.wait_lesson, lesson["id"], ("live",), 30)

        status, doc = await asyncio.to_thread(
            rig.member_post,
            other,
            f"/lessons/{lesson['id']}/floor",
            {"speaking": "floor-far", "muted": []},
            30,
            "PUT",
        )
        assert status == 200, doc
        for agent in (lead, far):
            await _until(
                "the floor",
                lambda a=agent: any(
                    isinstance(c.body, FloorState) and c.body.speaking == "floor-far"
                    for c in a.commands
                ),
                20,
            )
    finally:
        await lead.link.stop()
        await far.link.stop()
