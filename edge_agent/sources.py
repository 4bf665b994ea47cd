"""Builds the source runners (device + encoder) that a hardware profile declares.

Each driver maps to a runner:

- ``synthetic``: test patterns and a tone, paced by :class:`SourceRunner`;
- ``rtsp``: an IP camera, its H.264 passed through (:class:`CaptureRunner`);
- ``v4l2``: a USB camera or HDMI capture card in its best native format (H.264 passed
  through; MJPEG or raw decoded and encoded once);
- ``x11grab``: the screen of the PC that drives the panel;
- ``alsa`` / ``pulse``: a microphone, metered, optionally echo-cancelled, then Opus.

The video encoder is the profile's choice when it opens on this box; otherwise libx264,
with a warning (see :func:`edge_agent.devices.encoder_probe.choose_encoder`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Protocol

from edge_agent.devices import v4l2
from edge_agent.devices.encoder_probe import choose_encoder
from edge_agent.devices.errors import DeviceError
from edge_agent.devices.pulse_mic import PulseMicrophone
from edge_agent.devices.synthetic import SyntheticCamera, SyntheticMicrophone
from edge_agent.media.bus import FrameBus
from edge_agent.media.capture_runner import AudioFilter, CaptureRunner, CaptureSpec
from edge_agent.media.encoders import AudioEncoder, VideoEncoder
from edge_agent.media.level import SilenceAlarm
from edge_agent.media.source_runner import SourceRunner
from edge_agent.profile import Device, HardwareProfile

log = logging.getLogger(__name__)


class MediaSource(Protocol):
    """What the daemon and the lesson session need from a running device."""

    name: str
    kind: str
    fps: float
    width: int
    height: int
    bus: FrameBus
    silence: SilenceAlarm  # raised after 120 s of quiet in a live lesson (audio only)

    @property
    def state(self) -> str:
        """ok, starting, lost, failed or idle."""

    @property
    def detail(self) -> str:
        """Why the device is not ok."""

    @property
    def level_dbfs(self) -> float | None:
        """Microphone level (None for video)."""

    def start(self) -> None:
        """Start capturing."""

    def stop(self) -> None:
        """Stop capturing."""

    def request_keyframe(self) -> None:
        """Ask for a keyframe soon."""

    def set_bitrate(self, bps: int) -> bool:
        """Move the video encoder's bitrate; False when the source cannot (passthrough)."""


@functools.lru_cache(maxsize=8)
def video_codec(wanted: str) -> tuple[str, str | None]:
    """The codec to use for ``wanted`` on this box, and the fallback warning if any."""
    codec, warning = choose_encoder(wanted)
    if warning:
        log.warning("%s", warning)
    return codec, warning


def capture_spec(device: Device) -> CaptureSpec:
    """How PyAV opens a real device of the profile."""
    if device.driver == "rtsp":
        return CaptureSpec(
            device.url,
            None,
            {
                "rtsp_transport": device.rtsp_transport,
                "analyzeduration": "1000000",
                "fflags": "nobuffer",
            },
            passthrough=device.passthrough,
        )
    if device.driver == "v4l2":
        wanted_h264 = device.input_format in ("auto", "h264")
        try:
            modes = v4l2.probe(device.device)
        except DeviceError as err:
            log.warning("%s; opening %s with the profile's size and rate", err, device.device)
            modes = []
        if device.input_format != "auto":
            modes = [
                m for m in modes if v4l2.INPUT_FORMATS.get(m.pixel_format) == device.input_format
            ]
        if modes:
            chosen = v4l2.negotiate(
                modes, device.width, device.height, device.fps, prefer_h264=wanted_h264
            )
            return CaptureSpec(
                device.device, "v4l2", chosen.av_options(), passthrough=chosen.passthrough
            )
        options = {"video_size": f"{device.width}x{device.height}", "framerate": str(device.fps)}
        if device.input_format != "auto":
            options["input_format"] = device.input_format
        return CaptureSpec(device.device, "v4l2", options, passthrough=False)
    if device.driver == "x11grab":
        return CaptureSpec(
            device.device,
            "x11grab",
            {"framerate": str(device.fps), "draw_mouse": "1"},
        )
    if device.driver == "alsa":
        return CaptureSpec(device.device, "alsa", {"sample_rate": "48000", "channels": "1"})
    if device.driver == "pulse":
        # Read through PulseAudio's own API (devices/pulse_mic.py): PyAV has no pulse input.
        return CaptureSpec(device.device, "pulse", {"sample_rate": "48000"})
    raise ValueError(f"driver {device.driver!r} is not a capture driver")


def build_runner(
    device: Device,
    profile: HardwareProfile,
    loop: asyncio.AbstractEventLoop,
    *,
    audio_filter: AudioFilter | None = None,
    is_live: Callable[[], bool] = lambda: False,
    pulse_server: str | None = None,
) -> MediaSource:
    """One supervised runner for a device of the profile (``pulse_server``: None is
    libpulse's default server)."""
    bus = FrameBus(device.name, device.media_kind)
    if device.kind == "microphone":
        if device.driver == "synthetic":
            return SourceRunner(
                device.name,
                "audio",
                SyntheticMicrophone(),
                AudioEncoder(bitrate=device.bitrate),
                50.0,
                bus,
                loop,
                is_live=is_live,
            )
        return CaptureRunner(
            device.name,
            "audio",
            capture_spec(device),
            bus,
            loop,
            encoder_factory=lambda: AudioEncoder(bitrate=device.bitrate),
            fps=50.0,
            audio_filter=audio_filter,
            is_live=is_live,
            audio_input=(
                (lambda: PulseMicrophone(device.device, server=pulse_server))
                if device.driver == "pulse"
                else None
            ),
        )
    codec, _ = video_codec(profile.encoder.video_codec)

    def encoder() -> VideoEncoder:
        return VideoEncoder(
            device.width,
            device.height,
            device.fps,
            device.bitrate,
            codec=codec,
            preset=profile.encoder.preset,
            gop_seconds=profile.encoder.gop_seconds,
        )

    if device.driver == "synthetic":
        camera = SyntheticCamera(device.width, device.height, device.fps, device.name)
        return SourceRunner(
            device.name,
            "video",
            camera,
            encoder(),
            float(device.fps),
            bus,
            loop,
            width=device.width,
            height=device.height,
        )
    return CaptureRunner(
        device.name,
        "video",
        capture_spec(device),
        bus,
        loop,
        encoder_factory=encoder,
        fps=float(device.fps),
        width=device.width,
        height=device.height,
    )
