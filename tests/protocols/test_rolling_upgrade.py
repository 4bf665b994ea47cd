"""A controller of this build and an agent of release 0.5, over real CURVE ZeroMQ.

The agent runs release 0.5's own protocol package (tests/peers/release05) in a process of
its own: it refuses any field or message type it does not know. It must register, beat,
and be joined into a lesson, with nothing it receives refused.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
from datetime import timedelta

import pytest
from helpers import issue_token as issue_token_for

from controller.agents.registry import add_classroom
from controller.app.daemon import ControllerDaemon
from controller.db.models import Classroom
from controller.db.session import utcnow
from controller.lessons.scheduling import schedule_lesson
from edge_agent.enrol import enrol

pytestmark = pytest.mark.timeout(90)

OLD_AGENT = pathlib.Path(__file__).parents[1] / "peers" / "release05" / "old_agent.py"


async def test_a_release_05_agent_registers_beats_and_joins_a_lesson(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    endpoint = f"tcp://127.0.0.1:{controller.config.control_port}"
    token = issue_token_for(controller.config.state_dir, "old-101")
    identity = await enrol(endpoint, token, tmp_path / "old-101")
    cfg = {
        "classroom_id": "old-101",
        "controller": endpoint,
        "controller_public_key": identity.controller_public_key,
        "public_key": identity.public_key,
        "secret_key": identity.secret_key,
        "seconds": 8.0,
        "heartbeat_s": 0.3,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(OLD_AGENT),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(cfg).encode())
    proc.stdin.close()

    def lesson() -> None:
        with controller._sessions() as db:
            add_classroom(db, "recv-201", "recv-201", "test school", b"k" * 40)
            start = utcnow() + timedelta(seconds=3)
            schedule_lesson(db, "old-101", ["recv-201"], start, start + timedelta(minutes=5))

    # Once it registered (its inventory is in), a lesson prepared now joins it.
    for _ in range(100):
        with controller._sessions() as db:
            room = db.get(Classroom, "old-101")
            if room is not None and room.inventory:
                break
        await asyncio.sleep(0.05)
    await asyncio.to_thread(lesson)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    seen = [json.loads(line) for line in out.decode().splitlines()]
    refused = [s["error"] for s in seen if "error" in s]
    types = [s["type"] for s in seen if "type" in s]
    assert proc.returncode == 0, err.decode()[-2000:]
    assert not refused, refused
    assert "agent.register.ack" in types, types
    assert types.count("agent.heartbeat.ack") >= 5, types
    assert "cmd.join" in types, types
    assert controller.hub is not None
    with controller._sessions() as db:
        room = db.get(Classroom, "old-101")
        assert room is not None and room.online
        # Kept, so that its lessons stay off Janus (a 0.5 agent ignores a placement).
        assert room.protocol_minor == 5


OLD_CONTROLLER = OLD_AGENT.parent / "old_controller.py"


async def test_an_agent_of_this_build_talks_to_a_release_05_controller() -> None:
    """Upgraded before its controller (or the controller rolled back): the agent's first
    registration is refused for its envelope's "m"; it then speaks 0.5's shape."""
    import zmq
    from helpers import free_port_pair

    from edge_agent.identity import Identity
    from edge_agent.link import ControlLink
    from protocols.messages import CommandAck, Heartbeat, Register
    from protocols.version import OLDEST_MINOR

    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    port = free_port_pair()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(OLD_CONTROLLER),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(
        json.dumps(
            {
                "public_key": server_public.decode(),
                "secret_key": server_secret.decode(),
                "port": port,
                "seconds": 8.0,
            }
        ).encode()
    )
    proc.stdin.close()
    assert json.loads(await asyncio.wait_for(proc.stdout.readline(), 10)) == {"listening": True}
    identity = Identity(
        classroom_id="new-101",
        controller=f"tcp://127.0.0.1:{port}",
        controller_public_key=server_public.decode(),
        public_key=client_public.decode(),
        secret_key=client_secret.decode(),
    )

    async def no_commands(env: object) -> CommandAck:
        return CommandAck(command="", ok=True)

    link = ControlLink(
        identity,
        lambda: Register(
            classroom_id="new-101",
            agent_version="test",
            profile_name="synthetic",
            profile_digest="0" * 64,
            inventory=[],
        ),
        lambda seq: Heartbeat(seq=seq, cpu_pct=1, mem_pct=1, disk_free_bytes=1, disk_pct=1),
        no_commands,  # type: ignore[arg-type]
        heartbeat_interval=0.3,
    )
    await link.start()
    try:
        await asyncio.wait_for(link.registered.wait(), 6)
        assert link.peer_minor == OLDEST_MINOR
        await asyncio.sleep(1.0)  # beats in 0.5's shape are acknowledged
        assert link.online
    finally:
        await link.stop()
    out, _ = await asyncio.wait_for(proc.communicate(), 15)
    seen = [json.loads(line) for line in out.decode().splitlines()]
    refused = [s["error"] for s in seen if "error" in s]
    types = [s["type"] for s in seen if "type" in s]
    assert len(refused) == 1 and "m:" in refused[0], refused  # only the first, with "m"
    assert types[0] == "agent.register" and types.count("agent.heartbeat") >= 2, types
