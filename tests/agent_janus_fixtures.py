"""Helpers of the agent's Janus tests: a placed lesson and synthetic classrooms' sources."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from benchlib.janus import JanusServer

from edge_agent.devices.synthetic import SyntheticCamera, SyntheticMicrophone
from edge_agent.media.bus import FrameBus
from edge_agent.media.encoders import AudioEncoder, VideoEncoder
from edge_agent.media.source_runner import SourceRunner
from protocols.messages import JanusPlacement


@dataclass
class Lesson:
    """A running Janus and a lesson's room on it, as the controller placed it."""

    janus: JanusServer
    placement: JanusPlacement


class CountingRunner(SourceRunner):
    """A synthetic source that notes when its encoder was asked for a keyframe."""

    keyframe_requests: list[float]

    def request_keyframe(self) -> None:
        """Note the time, then ask the encoder as usual."""
        self.keyframe_requests.append(asyncio.get_running_loop().time())
        super().request_keyframe()


def camera(name: str, *, gop_seconds: float = 2.0, fps: int = 15) -> CountingRunner:
    """A 320x240 synthetic camera (counter and capture time burned in), encoded once."""
    runner = CountingRunner(
        name,
        "video",
        SyntheticCamera(320, 240, fps, name),
        VideoEncoder(320, 240, fps, 300_000, gop_seconds=gop_seconds),
        float(fps),
        FrameBus(name, "video"),
        asyncio.get_running_loop(),
        width=320,
        height=240,
    )
    runner.keyframe_requests = []
    return runner


def microphone(name: str) -> CountingRunner:
    """A synthetic tone-and-tick microphone, Opus-encoded once."""
    runner = CountingRunner(
        name,
        "audio",
        SyntheticMicrophone(),
        AudioEncoder(),
        50.0,
        FrameBus(name, "audio"),
        asyncio.get_running_loop(),
    )
    runner.keyframe_requests = []
    return runner
