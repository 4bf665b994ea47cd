"""A relay that answers nothing (stopped outright, the extreme of saturated) cannot stall
the controller: its console and API answer quickly and agents' heartbeats are acked."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import statistics
import time

import pytest
from helpers import bearer_headers, controller_base, controller_session, issue_token

from controller.app.daemon import ControllerDaemon
from controller.lessons.orchestrator import LessonRun
from controller.relay.exceptions import RelayUnavailable
from controller.relay.room import FeedRef, SignallingError
from edge_agent.enrol import enrol
from edge_agent.identity import Identity
from edge_agent.link import ControlLink
from protocols import envelope
from protocols.messages import CommandAck, Heartbeat, Register

pytestmark = pytest.mark.timeout(90)
REQUESTS = 40
P95_LIMIT_S = 0.3


def _register(identity: Identity) -> Register:
    return Register(
        classroom_id=identity.classroom_id,
        agent_version="test",
        profile_name="synthetic",
        profile_digest="0" * 64,
        inventory=[],
    )


async def _no_commands(env: envelope.Envelope) -> CommandAck:
    return CommandAck(command=env.type, ok=True)


async def test_a_stopped_relay_does_not_stall_the_api_or_the_heartbeats(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    assert controller.relay is not None and controller.orchestrator is not None
    await controller.relay.start()
    pid = controller.relay.pid
    assert pid is not None
    # A lesson under way whose relay is in the stopped process: the metrics read it.
    lesson = controller.relay.open("L-busy")
    controller.orchestrator.runs["L-busy"] = LessonRun("L-busy", lesson)

    token = issue_token(controller.config.state_dir, "city-101")
    endpoint = f"tcp://127.0.0.1:{controller.config.control_port}"
    identity = await enrol(endpoint, token, tmp_path / "agent")
    beats: list[float] = []

    def heartbeat(seq: int) -> Heartbeat:
        return Heartbeat(seq=seq, cpu_pct=1, mem_pct=1, disk_free_bytes=1, disk_pct=1)

    link = ControlLink(
        identity, lambda: _register(identity), heartbeat, _no_commands, heartbeat_interval=0.3
    )
    await link.start()
    headers = bearer_headers(controller._sessions)
    base = controller_base(controller)
    os.kill(pid, signal.SIGSTOP)
    waiting = asyncio.create_task(
        lesson.answer_viewer("v", "sdp", [FeedRef("a", "teacher", "video")])
    )  # a call the stopped relay holds for as long as it can
    try:
        await asyncio.wait_for(link.registered.wait(), 5)
        latencies: list[float] = []
        async with controller_session(controller) as http:
            paths = ["/", "/api/v1/live", "/api/v1/metrics", "/api/v1/dashboard"]
            started = time.monotonic()
            for i in range(REQUESTS):
                path = paths[i % len(paths)]
                t0 = time.monotonic()
                async with http.get(base + path, headers=headers) as r:
                    await r.read()
                    assert r.status == 200, (path, r.status)
                latencies.append(time.monotonic() - t0)
                if link._last_ack and (not beats or beats[-1] != link._last_ack):
                    beats.append(link._last_ack)
                await asyncio.sleep(0.05)
            while time.monotonic() - started < 3.0:  # heartbeats over a few periods
                if not beats or beats[-1] != link._last_ack:
                    beats.append(link._last_ack)
                await asyncio.sleep(0.05)
        p95 = statistics.quantiles(latencies, n=20)[-1]
        print(f"API p95 with the relay process stopped: {p95 * 1000:.0f} ms over {REQUESTS}")
        assert p95 < P95_LIMIT_S, f"p95 {p95 * 1000:.0f} ms"
        assert len(beats) >= 5, f"only {len(beats)} heartbeats acked in 3 s"
        assert controller.presence is not None and controller.presence.is_online("city-101")
        assert not waiting.done()  # the relay's call is still out, and nothing waited on it
    finally:
        os.kill(pid, signal.SIGCONT)
        await link.stop()
    # Once it runs again the relay answers it (no such feed), or it has timed out.
    with pytest.raises((SignallingError, RelayUnavailable)):
        await waiting
