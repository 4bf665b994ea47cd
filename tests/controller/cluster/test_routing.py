"""Commands for an agent held by another controller: two real controller processes on a
real PostgreSQL, and a real agent link (CURVE DEALER) registered with one of them."""

from __future__ import annotations

import asyncio
import pathlib
import time

import pytest
from benchlib.cluster_rig import ClusterRig, Member

from edge_agent.enrol import enrol
from edge_agent.identity import Identity
from edge_agent.link import ControlLink
from protocols import envelope
from protocols.messages import (
    ActionResult,
    AgentAction,
    Body,
    CommandAck,
    DeviceInfo,
    Heartbeat,
    JoinLesson,
    Register,
)

pytestmark = pytest.mark.timeout(180)

BIG_OUTPUT = "x" * 20_000  # well past NOTIFY's 8000 bytes: the reply travels in parts


class _Agent:
    """A real control link that answers actions and acknowledges every command."""

    def __init__(self, identity: Identity) -> None:
        self.commands: list[envelope.Envelope] = []
        self.link = ControlLink(identity, self._register, self._beat, self._on_command, 1.0)
        self._identity = identity

    def _register(self) -> Register:
        camera = DeviceInfo(name="cam", kind="camera", driver="synthetic", role="teacher")
        mic = DeviceInfo(name="mic", kind="microphone", driver="synthetic", role="room")
        return Register(
            classroom_id=self._identity.classroom_id,
            agent_version="test",
            profile_name="synthetic",
            profile_digest="0" * 64,
            inventory=[camera, mic],
        )

    @staticmethod
    def _beat(seq: int) -> Heartbeat:
        return Heartbeat(seq=seq, cpu_pct=1, mem_pct=1, disk_free_bytes=1, disk_pct=1)

    async def _on_command(self, env: envelope.Envelope) -> Body:
        self.commands.append(env)
        if isinstance(env.body, AgentAction):
            return ActionResult(action=env.body.action, ok=True, output=BIG_OUTPUT)
        return CommandAck(command=env.type, ok=True)


async def _wait(what: str, predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def _agent_on(rig: ClusterRig, member: Member, room: str, state: pathlib.Path) -> _Agent:
    token = await asyncio.to_thread(rig.add_classroom, room)
    identity = await enrol(member.endpoint, token, state)
    agent = _Agent(identity)
    await agent.link.start()
    await asyncio.wait_for(agent.link.registered.wait(), 30)
    return agent


async def test_commands_reach_an_agent_held_by_the_other_controller(
    cluster: ClusterRig, tmp_path: pathlib.Path
) -> None:
    rig = cluster
    leader = await asyncio.to_thread(rig.leader)
    other = next(m for m in rig.members if m is not leader)
    # The agent registers with the controller that does not lead.
    agent = await _agent_on(rig, other, "routed-room", tmp_path / "agent")
    try:
        # A console action at the leader, whose hub does not hold the agent; the agent's
        # 20 kB answer comes back in parts.
        status, doc = await asyncio.to_thread(
            rig.member_post, leader, "/classrooms/routed-room/actions", {"action": "doctor"}, 60
        )
        assert status == 200, doc
        assert doc["output"] == BIG_OUTPUT
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
