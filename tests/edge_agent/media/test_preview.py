"""Decoded low-rate copies of a real synthetic source, for the panel corner and director."""

from __future__ import annotations

import asyncio
import pathlib

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
