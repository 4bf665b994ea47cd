"""A whole controller on PostgreSQL: it migrates a fresh database at start, an agent
enrols, registers and heartbeats over the real control plane, and its state lands in
PostgreSQL."""

from __future__ import annotations

import asyncio
import pathlib
import time

import pytest
from benchlib.ports import free_port_pair
from pg_server import PgServer

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.daemon import ControllerConfig, ControllerDaemon
from controller.db.models import Classroom
from controller.db.session import as_utc, make_engine, migrate, sessions, utcnow
from edge_agent.enrol import enrol
from edge_agent.link import ControlLink
from protocols.messages import CommandAck, Heartbeat, Register

pytestmark = pytest.mark.timeout(60)


async def test_an_agent_enrols_and_heartbeats_into_postgresql(
    pg_server: PgServer, tmp_path: pathlib.Path
) -> None:
    url = pg_server.url(pg_server.create_database())
    config = ControllerConfig(
        state_dir=tmp_path / "controller",
        database_url=url,
        control_port=free_port_pair(),
        http_port=0,
        heartbeat_s=0.3,
    )
    daemon = ControllerDaemon(config)
    await daemon.start()
    engine = make_engine(url)
    try:
        await asyncio.to_thread(migrate, url)  # a second controller's start: nothing to do
        db = sessions(engine)
        with db() as s:
            keys = ServerKeys.load_or_create(config.state_dir)
            token = add_classroom(s, "city-101", "City 101", "city", keys.public)
        identity = await enrol(f"tcp://127.0.0.1:{config.control_port}", token, tmp_path / "agent")

        def register() -> Register:
            return Register(
                classroom_id="city-101",
                agent_version="test",
                profile_name="synthetic",
                profile_digest="0" * 64,
                inventory=[],
            )

        def beat(seq: int) -> Heartbeat:
            return Heartbeat(seq=seq, cpu_pct=1, mem_pct=1, disk_free_bytes=1, disk_pct=1)

        async def ack(env):  # type: ignore[no-untyped-def]
            return CommandAck(command=env.type, ok=True)

        link = ControlLink(identity, register, beat, ack, heartbeat_interval=0.3)
        await link.start()
        try:
            await asyncio.wait_for(link.registered.wait(), 10)
            deadline = time.monotonic() + 10
            while True:
                with db() as s:
                    room = s.get(Classroom, "city-101")
                    assert room is not None
                    if room.online and room.last_seen_at is not None:
                        break
                assert time.monotonic() < deadline, "the heartbeat never reached PostgreSQL"
                await asyncio.sleep(0.2)
            # timestamptz comes back aware; as_utc keeps it UTC
            seen = as_utc(room.last_seen_at)
            assert seen.utcoffset() is not None and abs((utcnow() - seen).total_seconds()) < 30
        finally:
            await link.stop()
    finally:
        await daemon.stop()
        engine.dispose()
