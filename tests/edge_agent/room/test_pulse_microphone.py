"""The ``pulse`` microphone driver against a real PulseAudio: a tone played into a null
sink is captured from its monitor, metered, encoded to Opus and published on the bus."""

from __future__ import annotations

import asyncio
import time

from edge_agent.profile import Device, HardwareProfile
from edge_agent.sources import build_runner
from protocols.media.encoded_frame import EncodedFrame
from tests.peers.pulse import PulseServer, tone


async def test_pulse_microphone_reaches_the_bus(pulse_server: PulseServer, pulse_sink: str) -> None:
    device = Device(
        name="ceiling",
        kind="microphone",
        driver="pulse",
        device=f"{pulse_sink}.monitor",
        role="room",
        bitrate=32_000,
    )
    profile = HardwareProfile(name="room", devices=[device])
    loop = asyncio.get_running_loop()
    runner = build_runner(device, profile, loop, pulse_server=pulse_server.server)
    queue: asyncio.Queue[EncodedFrame] = asyncio.Queue()
    runner.bus.subscribe(queue.put_nowait)
    player = pulse_server.player(pulse_sink, tone(1000, 10.0, -12.0))
    runner.start()
    try:
        frames = []
        deadline = time.monotonic() + 8
        while len(frames) < 100 and time.monotonic() < deadline:
            frames.append(await asyncio.wait_for(queue.get(), 5))
        assert len(frames) == 100 and all(f.kind == "audio" for f in frames)
        assert runner.state == "ok"
        await asyncio.sleep(0.5)
        assert runner.level_dbfs is not None and -18.0 < runner.level_dbfs < -12.0
        # The source goes away (the sink is unloaded): lost, then back when it returns.
        pulse_server.remove_sink(pulse_sink)
        for _ in range(50):
            if runner.state in ("lost", "failed"):
                break
            await asyncio.sleep(0.1)
        assert runner.state == "lost", runner.detail
        assert "retrying" in runner.detail
        pulse_server.add_sink(pulse_sink)
        for _ in range(80):
            if runner.state == "ok":
                break
            await asyncio.sleep(0.1)
        assert runner.state == "ok", runner.detail
    finally:
        runner.stop()
        player.stop()
