"""The floor reaches real agents (DEALER links on loopback): every joined classroom gets
each FloorState in seq order; the lead's keys change it; another room's keys are refused."""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from helpers import bearer_headers, controller_base, controller_session
from helpers import issue_token as issue_token_for

from controller.app.daemon import ControllerDaemon
from controller.db.session import utcnow
from controller.floor.store import floor_state
from controller.lessons.scheduling import schedule_lesson
from edge_agent.enrol import enrol
from edge_agent.identity import Identity
from edge_agent.link import ControlLink
from protocols import envelope
from protocols.messages import (
    Body,
    CommandAck,
    DeviceInfo,
    FloorRequest,
    FloorState,
    Heartbeat,
    JoinLesson,
    Register,
)

pytestmark = pytest.mark.timeout(60)

LEAD, RECEIVERS = "city-101", ["village-201", "village-202"]
DEVICES = {
    "lead": [
        DeviceInfo(name="teacher", kind="camera", driver="synthetic", role="teacher"),
        DeviceInfo(name="mic", kind="microphone", driver="synthetic", role="room"),
    ],
    "receiver": [
        DeviceInfo(name="student", kind="camera", driver="synthetic", role="student"),
        DeviceInfo(name="mic", kind="microphone", driver="synthetic", role="room"),
    ],
}


class Agent:
    """A real control link whose command handler records what arrives and acks it."""

    def __init__(self, identity: Identity, devices: list[DeviceInfo]) -> None:
        self.commands: list[Body] = []
        self.link = ControlLink(
            identity,
            lambda: Register(
                classroom_id=identity.classroom_id,
                agent_version="test",
                profile_name="synthetic",
                profile_digest="0" * 64,
                inventory=devices,
            ),
            lambda seq: Heartbeat(seq=seq, cpu_pct=1, mem_pct=1, disk_free_bytes=1, disk_pct=1),
            self._on_command,
            heartbeat_interval=0.3,
        )

    async def _on_command(self, env: envelope.Envelope) -> CommandAck:
        self.commands.append(env.body)
        return CommandAck(command=env.type, ok=True)

    def floors(self) -> list[FloorState]:
        return [c for c in self.commands if isinstance(c, FloorState)]

    def joins(self) -> list[JoinLesson]:
        return [c for c in self.commands if isinstance(c, JoinLesson)]


async def _wait(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def agents(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> AsyncIterator[dict[str, Agent]]:
    cfg = controller.config
    out = {}
    for cid in [LEAD, *RECEIVERS]:
        token = issue_token_for(cfg.state_dir, cid)
        identity = await enrol(f"tcp://127.0.0.1:{cfg.control_port}", token, tmp_path / cid)
        out[cid] = Agent(identity, DEVICES["lead" if cid == LEAD else "receiver"])
    try:
        for agent in out.values():
            await agent.link.start()
        for agent in out.values():
            await asyncio.wait_for(agent.link.registered.wait(), 10)
        yield out
    finally:
        for agent in out.values():
            await agent.link.stop()


async def test_floor_reaches_every_joined_room_in_seq_order(
    controller: ControllerDaemon, agents: dict[str, Agent]
) -> None:
    with controller._sessions() as s:
        now = utcnow()
        lesson = schedule_lesson(
            s, LEAD, RECEIVERS, now + timedelta(seconds=1), now + timedelta(seconds=50)
        ).id
    await _wait(lambda: all(a.joins() for a in agents.values()))
    join = agents[LEAD].joins()[0]
    assert [r.classroom_id for r in join.rooms] == [LEAD, *RECEIVERS]
    assert join.rooms[1].school == "test school" and join.rooms[1].name == "village-201"
    assert join.floor is not None and join.floor.seq == 0
    orchestrator = controller.orchestrator
    assert orchestrator is not None
    await _wait(lambda: orchestrator.runs[lesson].joined == {LEAD, *RECEIVERS})

    assert controller.http is not None
    url = f"{controller_base(controller)}/api/v1/lessons/{lesson}/floor"
    async with controller_session(controller, headers=bearer_headers(controller._sessions)) as http:
        for body in (
            {"speaking": "village-201"},
            {"speaking": "village-202", "muted": ["village-201"]},
        ):
            async with http.put(url, json=body) as r:
                assert r.status == 200, await r.text()
    await _wait(lambda: all(len(a.floors()) == 2 for a in agents.values()))
    for agent in agents.values():
        assert [(f.seq, f.speaking) for f in agent.floors()] == [
            (1, "village-201"),
            (2, "village-202"),
        ]

    # The lead's clicker: applied as keys:<lead>, answered with the state, spread to all.
    reply = await agents[LEAD].link.request(
        FloorRequest(lesson_id=lesson, speaking=None, muted=[]), timeout=5
    )
    answered = reply.expect(FloorState)
    assert (answered.seq, answered.speaking, answered.by) == (3, None, f"keys:{LEAD}")
    await _wait(lambda: all(len(a.floors()) == 3 for a in agents.values()))
    assert all(a.floors()[-1] == answered for a in agents.values())

    # A receiving room's keys are refused, counted, and change nothing.
    with pytest.raises(ConnectionError, match="not the lead classroom"):
        await agents["village-201"].link.request(
            FloorRequest(lesson_id=lesson, speaking="village-201"), timeout=5
        )
    assert controller.messages is not None and controller.messages.floor_refused == 1
    with controller._sessions() as s:
        assert floor_state(s, lesson).seq == 3
    await asyncio.sleep(0.3)
    assert all(len(a.floors()) == 3 for a in agents.values())

    # A room that rejoins mid-lesson gets the floor in its join.
    orchestrator.agent_registered("village-202")
    await _wait(lambda: len(agents["village-202"].joins()) >= 2)
    rejoin = agents["village-202"].joins()[-1]
    assert rejoin.floor is not None and rejoin.floor.seq == 3
