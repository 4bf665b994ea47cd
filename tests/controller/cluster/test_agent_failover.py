"""An agent moves to the next controller when its own goes away: two real controller
processes on a real PostgreSQL, and a real agent link enrolled with the first."""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from benchlib.cluster_rig import ClusterRig

# Two controller processes and their timing: alone, in phase 2.
pytestmark = [pytest.mark.solo, pytest.mark.timeout(240)]


async def test_agent_registers_with_the_next_controller_when_its_own_is_killed(
    cluster: ClusterRig, agent_on: Callable[..., Awaitable[Any]], tmp_path: pathlib.Path
) -> None:
    rig = cluster
    first, second = rig.members
    agent = await agent_on(rig, first, "moving-room", tmp_path / "agent")
    try:
        # Enrolment gave it every controller, in order.
        assert agent.link.endpoint == first.endpoint
        identity = agent._identity
        assert identity.endpoints == rig.endpoints()
        registrations = agent.link.counters.registrations

        await asyncio.to_thread(rig.kill_member, first)
        killed_at = time.monotonic()
        while agent.link.counters.registrations == registrations:
            assert time.monotonic() - killed_at < 15, "no registration with the next controller"
            await asyncio.sleep(0.1)
        took = time.monotonic() - killed_at
        assert agent.link.endpoint == second.endpoint
        assert took < 10, f"registered with the next controller after {took:.1f} s"

        def online_at_second() -> bool:
            rooms = rig.member_get(second, "/classrooms") or []
            return any(r["id"] == "moving-room" and r["online"] for r in rooms)

        await asyncio.to_thread(rig.wait, "moving-room online at the second", online_at_second, 10)
    finally:
        await agent.link.stop()
