"""Decoded low-rate copies of a real synthetic source, for the panel corner and director."""

from __future__ import annotations

import asyncio
import os
import pathlib
import subprocess
import sys

import av
import pytest

from edge_agent.media.bus import FrameBus
from edge_agent.media.preview import BusDecoder
from edge_agent.profile import load_profile
from edge_agent.sources import build_runner

SYNTHETIC = pathlib.Path(__file__).parents[3] / "hardware_profiles" / "synthetic.toml"


async def test_decodes_a_live_source_at_the_asked_rate() -> None:
    profile = load_profile(SYNTHETIC).profile
    runner = build_runner(profile.device("teacher"), profile, asyncio.get_running_loop())
    got: list[av.VideoFrame] = []
    preview = BusDecoder(runner.bus, got.append, max_fps=5)
    runner.start()
    preview.start()
    try:
        await asyncio.sleep(2.0)
    finally:
        preview.stop()
        runner.stop()
    # about 5 a second once the first keyframe arrived; every decoded frame full size
    assert 5 <= preview.delivered <= 11, preview.delivered
    assert preview.decoded > preview.delivered
    assert got[0].width == runner.width and got[0].height == runner.height
    assert preview.errors == 0


def test_refuses_an_audio_source() -> None:
    with pytest.raises(ValueError, match="not video"):
        BusDecoder(FrameBus("mic", "audio"), lambda f: None)


_STOP_SOON = """
import fractions, sys, time
import av, numpy as np
from edge_agent.media.bus import FrameBus
from edge_agent.media.preview import BusDecoder
from protocols.media.encoded_frame import EncodedFrame

enc = av.CodecContext.create("libx264", "w")
enc.width, enc.height, enc.pix_fmt = 640, 360, "yuv420p"
enc.time_base = fractions.Fraction(1, 30)
enc.options = {"tune": "zerolatency", "preset": "ultrafast"}
rng = np.random.default_rng(1)
frames = []
for i in range(8):
    picture = av.VideoFrame.from_ndarray(
        rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), format="rgb24"
    ).reformat(format="yuv420p")
    picture.pts = i
    for packet in enc.encode(picture):
        frames.append(EncodedFrame("video", bytes(packet), i, enc.time_base, packet.is_keyframe))
for round_ in range(40):
    bus = FrameBus("teacher", "video")
    decoder = BusDecoder(bus, lambda f: None, max_fps=30)
    decoder.start()
    for frame in frames[: 2 + round_ % 6]:
        bus.publish(frame)
    decoder.stop()
print("stopped", round_ + 1)
"""


def test_stopping_while_frames_are_still_decoding_never_hangs(tmp_path: pathlib.Path) -> None:
    """The decoder's thread ends cleanly however soon it is stopped.

    Run in a child process: the deadlock this guards against holds the GIL, so inside the
    test process even pytest-timeout could not report it.
    """
    root = pathlib.Path(__file__).parents[3]
    script = tmp_path / "stop_soon.py"
    script.write_text(_STOP_SOON)
    env = {**os.environ, "PYTHONPATH": str(root)}
    try:
        done = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the preview decoder hung while its thread was ending (frame-thread deadlock)")
    assert done.returncode == 0, done.stderr
    assert "stopped 40" in done.stdout
