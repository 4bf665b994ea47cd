"""Commands for an agent held by another controller: two real controller processes on a
real PostgreSQL, and a real agent link (CURVE DEALER) registered with one of them."""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from benchlib.cluster_rig import ClusterRig

from protocols.messages import (
    AgentAction,
    JoinLesson,
)

# Two controller processes and their timing: alone, in phase 2.
pytestmark = [pytest.mark.solo, pytest.mark.timeout(240)]


async def _wait(what: str, predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def test_commands_reach_an_agent_held_by_the_other_controller(
    cluster: ClusterRig, agent_on: Callable[..., Awaitable[Any]], tmp_path: pathlib.Path
) -> None:
    rig = cluster
    leader = await asyncio.to_thread(rig.leader)
    other = next(m for m in rig.members if m is not leader)
    # The agent registers with the controller that does not lead.
    agent = await agent_on(rig, other, "routed-room", tmp_path / "agent")
    try:
        # A console action at the leader, whose hub does not hold the agent; the agent's
        # 20 kB answer comes back in parts.
        status, doc = await asyncio.to_thread(
            rig.member_post, leader, "/classrooms/routed-room/actions", {"action": "doctor"}, 60
        )
        assert status == 200, doc
        assert doc["output"] == agent.action_output
        assert any(isinstance(c.body, AgentAction) for c in agent.commands)

        # The leader's orchestrator joins it into a lesson: a join, routed.
        await asyncio.to_thread(rig.add_classroom, "far-room")
        lesson = await asyncio.to_thread(rig.schedule, "routed-room", ["far-room"], 2, 20)
        await _wait(
            "the routed join",
            lambda: any(
                isinstance(c.body, JoinLesson) and c.body.lesson_id == lesson["id"]
                for c in agent.commands
            ),
            20,
        )
        metrics = await asyncio.to_thread(rig.member_get, leader, "/metrics")
        assert "classbridge_routed_commands_total" in metrics

        # An agent nobody holds: a clear refusal, not a hang.
        await asyncio.to_thread(rig.add_classroom, "nobody-room")
        status, doc = await asyncio.to_thread(
            rig.member_post, leader, "/classrooms/nobody-room/actions", {"action": "restart"}, 60
        )
        assert status in (409, 504), doc
        assert "nobody-room" in doc["error"]
    finally:
        await agent.link.stop()
