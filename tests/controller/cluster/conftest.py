"""Two real controller processes on one PostgreSQL database of this test, and a real
agent control link (CURVE DEALER) to register with either."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Awaitable, Callable, Iterator

import pytest
from benchlib.cluster_rig import ClusterRig, Member
from pg_server import PgServer

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
    Register,
)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """An empty PostgreSQL database of this test (PostgreSQL only: a cluster needs it)."""
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def cluster(pg_url: str, tmp_path: pathlib.Path) -> Iterator[ClusterRig]:
    """Two controllers on ``pg_url``, started; stopped (and their agents) afterwards."""
    rig = ClusterRig(pg_url, count=2, root=tmp_path, heartbeat_s=1.0, prepare_s=1.0)
    try:
        rig.start_controller()
        yield rig
    finally:
        rig.stop()


ACTION_OUTPUT = "x" * 20_000  # well past NOTIFY's 8000 bytes: the reply travels in parts


class _Agent:
    """A real control link that answers actions and acknowledges every command."""

    def __init__(self, identity: Identity) -> None:
        self.commands: list[envelope.Envelope] = []
        self.action_output = ACTION_OUTPUT
        self.link = ControlLink(identity, self._register, self._beat, self._on_command, 1.0)
        self._identity = identity

    def _register(self) -> Register:
        camera = DeviceInfo(name="cam", kind="camera", driver="synthetic", role="teacher")
        mic = DeviceInfo(name="mic", kind="microphone", driver="synthetic", role="room")
        students = DeviceInfo(name="students", kind="camera", driver="synthetic", role="student")
        return Register(
            classroom_id=self._identity.classroom_id,
            agent_version="test",
            profile_name="synthetic",
            profile_digest="0" * 64,
            inventory=[camera, students, mic],
        )

    @staticmethod
    def _beat(seq: int) -> Heartbeat:
        return Heartbeat(seq=seq, cpu_pct=1, mem_pct=1, disk_free_bytes=1, disk_pct=1)

    async def _on_command(self, env: envelope.Envelope) -> Body:
        self.commands.append(env)
        if isinstance(env.body, AgentAction):
            return ActionResult(action=env.body.action, ok=True, output=self.action_output)
        return CommandAck(command=env.type, ok=True)


async def _agent_on(rig: ClusterRig, member: Member, room: str, state: pathlib.Path) -> _Agent:
    token = await asyncio.to_thread(rig.add_classroom, room)
    identity = await enrol(member.endpoint, token, state)
    agent = _Agent(identity)
    await agent.link.start()
    await asyncio.wait_for(agent.link.registered.wait(), 30)
    return agent


AgentOn = Callable[[ClusterRig, Member, str, pathlib.Path], Awaitable[_Agent]]


@pytest.fixture
def agent_on() -> AgentOn:
    """Add a classroom, enrol a real link with a member and wait for its registration."""
    return _agent_on
