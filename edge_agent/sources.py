"""Builds the source runners (device + encoder) that a hardware profile declares."""

from __future__ import annotations

import asyncio

from edge_agent.devices.synthetic import SyntheticCamera, SyntheticMicrophone
from edge_agent.media.bus import FrameBus
from edge_agent.media.encoders import AudioEncoder, VideoEncoder
from edge_agent.media.source_runner import SourceRunner
from edge_agent.profile import Device, HardwareProfile


def build_runner(
    device: Device, profile: HardwareProfile, loop: asyncio.AbstractEventLoop
) -> SourceRunner:
    """One supervised runner for a device of the profile."""
    bus = FrameBus(device.name, device.media_kind)
    if device.kind == "microphone":
        return SourceRunner(
            device.name,
            "audio",
            SyntheticMicrophone(),
            AudioEncoder(bitrate=device.bitrate),
            50.0,
            bus,
            loop,
        )
    camera = SyntheticCamera(device.width, device.height, device.fps, device.name)
    encoder = VideoEncoder(
        device.width,
        device.height,
        device.fps,
        device.bitrate,
        codec=profile.encoder.video_codec,
        preset=profile.encoder.preset,
        gop_seconds=profile.encoder.gop_seconds,
    )
    return SourceRunner(
        device.name,
        "video",
        camera,
        encoder,
        float(device.fps),
        bus,
        loop,
        width=device.width,
        height=device.height,
    )
