"""systemd hears READY=1 once devices are probed and the link is up (or given up on)."""

from __future__ import annotations

import asyncio
import pathlib
import socket

import pytest
import zmq

from edge_agent import daemon as daemon_mod
from edge_agent.daemon import AgentDaemon
from edge_agent.identity import Identity
from edge_agent.profile import Device, HardwareProfile, LoadedProfile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_ready_names_failing_devices_and_an_absent_controller(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_mod, "READY_LINK_WAIT_S", 1.0)
    notify_path = tmp_path / "notify.sock"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(notify_path))
    sink.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_path))
    server_pub, _ = zmq.curve_keypair()
    pub, sec = zmq.curve_keypair()
    identity = Identity(
        "c1", f"tcp://127.0.0.1:{_free_port()}", server_pub.decode(), pub.decode(), sec.decode()
    )
    dead = f"rtsp://127.0.0.1:{_free_port()}/cam"
    profile = HardwareProfile(
        name="ready-test",
        devices=[
            Device(
                name="teacher",
                kind="camera",
                role="teacher",
                driver="rtsp",
                url=dead,
                width=640,
                height=360,
                fps=25,
                bitrate=1_000_000,
            ),
            Device(name="mic", kind="microphone", role="room", driver="synthetic", bitrate=48000),
        ],
    )
    agent = AgentDaemon(
        tmp_path / "state", identity, LoadedProfile(path="x.toml", profile=profile, digest="0")
    )
    await agent.start()
    try:
        messages = []
        while True:
            try:
                messages.append(sink.recv(4096).decode())
            except BlockingIOError:
                break
        ready = [m for m in messages if m.startswith("READY=1")]
        assert ready, messages
        assert "devices failing: teacher" in ready[0]
        assert "controller unreachable" in ready[0]
        beat = agent._heartbeat(1)
        assert beat.devices["teacher"].state == "failed" and dead in beat.devices["teacher"].detail
        assert beat.devices["mic"].state == "idle"
        assert "teacher" in beat.readiness["devices"] and "device_lost" in beat.alerts
    finally:
        await agent.stop()
        sink.close()
    await asyncio.sleep(0)
