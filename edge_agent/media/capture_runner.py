"""Runs one real capture device in its own thread: RTSP, V4L2, screen grab, ALSA/Pulse.

FFmpeg's demuxers and input devices (through PyAV) open the device. Two paths:

- **Passthrough.** The device already sends H.264 (an IP camera, a UVC camera with an
  H.264 mode). Its packets are gathered into access units and published as they are: no
  decode and no re-encode, so a camera stream costs next to no CPU.
- **Encode.** Raw, MJPEG, a screen or a microphone: frames are decoded, brought to the
  profile's size and format and encoded once by the agent's own encoder.

Supervision: a read that fails or stalls for ``read_timeout_s`` marks the device lost;
the runner reopens it with backoff and carries on. Timestamps continue across reopenings
on the wall clock, so the outage shows up as a gap of the right length, and publishing
resumes on a keyframe.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import av
import numpy as np

from edge_agent.media.bus import FrameBus
from edge_agent.media.level import LevelMeter, SilenceAlarm
from edge_agent.media.priority import favour_this_thread
from edge_agent.media.supervision import Backoff, DeviceHealth
from protocols.media.encoded_frame import AUDIO_TIME_BASE, VIDEO_TIME_BASE, EncodedFrame
from protocols.media.h264 import is_keyframe, parameter_sets

log = logging.getLogger(__name__)

AUDIO_SAMPLES = 960  # 20 ms at 48 kHz


@dataclass(frozen=True)
class CaptureSpec:
    """How to open a device with PyAV."""

    url: str
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    passthrough: bool = False
    open_timeout_s: float = 5.0
    read_timeout_s: float = 2.0


class AudioInput(Protocol):
    """A microphone that FFmpeg cannot open (PulseAudio): opened, read, closed here."""

    def open(self) -> None:
        """Connect to the device."""

    def frames(self) -> Iterator[av.AudioFrame]:
        """Frames as they are recorded (blocking); raises when the device breaks."""

    def close(self) -> None:
        """Let go of the device."""


class DeviceStalled(Exception):
    """The device opened but sent nothing for longer than its read timeout."""


Encoder = Any  # VideoEncoder or AudioEncoder (edge_agent.media.encoders)
AudioFilter = Callable[[np.ndarray[Any, np.dtype[np.int16]]], np.ndarray[Any, np.dtype[np.int16]]]


class CaptureRunner:
    """Captures, (encodes) and publishes one device; supervised (see module docstring)."""

    def __init__(
        self,
        name: str,
        kind: str,
        spec: CaptureSpec,
        bus: FrameBus,
        loop: asyncio.AbstractEventLoop,
        *,
        encoder_factory: Callable[[], Encoder] | None = None,
        fps: float = 30.0,
        width: int = 0,
        height: int = 0,
        audio_filter: AudioFilter | None = None,
        is_live: Callable[[], bool] = lambda: False,
        audio_input: Callable[[], AudioInput] | None = None,
    ) -> None:
        self.name, self.kind, self.spec = name, kind, spec
        self._audio_input = audio_input
        self.bus = bus
        self.fps, self.width, self.height = fps, width, height
        self._loop = loop
        self._encoder_factory = encoder_factory
        self._video_encoder: Encoder | None = None
        self._target_bps: int | None = None
        self._audio_filter = audio_filter
        self._is_live = is_live
        self.health = DeviceHealth(name)
        self.meter = LevelMeter()
        self.silence = SilenceAlarm()
        self._stop = threading.Event()
        self._keyframe = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self._last_pts = -1
        self.frames = 0
        self.counter = 0
        self.opened = 0

    # -- the interface the daemon and the session use (same as SourceRunner) ------------
    @property
    def state(self) -> str:
        """ok, starting, lost, failed or idle."""
        return self.health.state

    @property
    def detail(self) -> str:
        """Why the device is not ok, in words for the technician."""
        return self.health.detail

    @property
    def level_dbfs(self) -> float | None:
        """The microphone meter's reading (None for video)."""
        return self.meter.level_dbfs if self.kind == "audio" else None

    def start(self) -> None:
        """Start the capture thread."""
        self._stop.clear()
        self.health.set("starting")
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the capture thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.health.set("idle")

    def set_bitrate(self, bps: int) -> bool:
        """Move the encoder's bitrate (congestion control); False for a passed-through camera."""
        if self.spec.passthrough or self.kind != "video":
            return False
        self._target_bps = bps
        if self._video_encoder is not None and hasattr(self._video_encoder, "retarget"):
            self._video_encoder.retarget(bps)
        return True

    def request_keyframe(self) -> None:
        """Ask for a keyframe; a passthrough camera keeps its own GOP and ignores it."""
        self._keyframe.set()

    # -- supervision ----------------------------------------------------------------
    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                self._session(backoff)
                if self._stop.is_set():
                    return
                raise DeviceStalled("the device ended its stream")
            except Exception as err:  # noqa: BLE001 - any failure is the device's; retry
                if self._stop.is_set():
                    return
                self.health.fault(_explain(self.spec, err))
                if self._stop.wait(backoff.next()):
                    return

    def _session(self, backoff: Backoff) -> None:
        if self._audio_input is not None:
            source = self._audio_input()
            try:
                source.open()
                self.opened += 1
                self._audio_loop(source.frames(), backoff)
            finally:
                source.close()
            return
        # PyAV's (open, read) timeouts bound opening and every read: a camera that goes
        # quiet without closing its connection is noticed within read_timeout_s.
        container = av.open(
            self.spec.url,
            format=self.spec.format,
            options=dict(self.spec.options),
            timeout=(self.spec.open_timeout_s, self.spec.read_timeout_s),
        )
        self.opened += 1
        try:
            stream = (
                container.streams.audio[0] if self.kind == "audio" else container.streams.video[0]
            )
            if self.kind == "audio":
                self._audio_loop(container.decode(stream), backoff)
            elif self.spec.passthrough and stream.codec_context.name == "h264":
                self._passthrough_loop(container, stream, backoff)
            else:
                self._encode_loop(container, stream, backoff)
        finally:
            container.close()

    def _went_ok(self, backoff: Backoff) -> None:
        if self.health.state != "ok":
            self.health.set("ok")
            backoff.reset()

    def _wall_pts(self, time_base: fractions.Fraction) -> int:
        return int((time.monotonic() - self._t0) / time_base)

    def _publish(self, frame: EncodedFrame) -> None:
        self._loop.call_soon_threadsafe(self.bus.publish, frame)
        self.frames += 1

    # -- passthrough: H.264 packets as they come ----------------------------------------
    def _passthrough_loop(self, container: Any, stream: Any, backoff: Backoff) -> None:
        extradata = bytes(stream.codec_context.extradata or b"")
        headers = parameter_sets(extradata) if extradata.startswith(b"\x00\x00") else None
        origin: int | None = None  # camera pts that maps to the wall-clock base
        base = 0
        pending: list[bytes] = []
        pending_pts: int | None = None
        pending_key = False
        started = False
        for packet in container.demux(stream):
            if self._stop.is_set():
                return
            if packet.size == 0 or packet.pts is None:
                continue
            pts90k = int(packet.pts * packet.time_base / VIDEO_TIME_BASE)
            if pending_pts is not None and pts90k != pending_pts:
                data = b"".join(pending)
                key = pending_key or is_keyframe(data)
                if key and headers is not None and parameter_sets(data) is None:
                    data = headers + data  # cameras that send SPS/PPS only in the SDP
                if key or started:
                    started = True
                    if origin is None:
                        origin = pending_pts
                        base = max(self._wall_pts(VIDEO_TIME_BASE), self._last_pts + 1)
                    out_pts = max(base + pending_pts - origin, self._last_pts + 1)
                    self._last_pts = out_pts
                    self._went_ok(backoff)
                    self._publish(
                        EncodedFrame(
                            "video",
                            data,
                            out_pts,
                            VIDEO_TIME_BASE,
                            key,
                            time.time() * 1000.0,
                            {"counter": self.counter},
                        )
                    )
                    self.counter += 1
                pending, pending_key = [], False
            pending_pts = pts90k
            pending.append(bytes(packet))
            pending_key = pending_key or bool(packet.is_keyframe)

    # -- decode and encode: raw/MJPEG cameras, screen capture -------------------------
    def _encode_loop(self, container: Any, stream: Any, backoff: Backoff) -> None:
        assert self._encoder_factory is not None, "an encoded source needs an encoder"
        encoder = self._encoder_factory()
        if self._target_bps is not None and hasattr(encoder, "retarget"):
            encoder.retarget(self._target_bps)
        self._video_encoder = encoder
        stream.thread_type = "AUTO"
        interval = 1.0 / self.fps
        next_due = time.monotonic()
        for frame in container.decode(stream):
            if self._stop.is_set():
                return
            now = time.monotonic()
            if now + 0.002 < next_due:
                continue  # the device runs faster than the profile asks: drop
            next_due = max(next_due + interval, now - interval)
            out_frame = frame.reformat(self.width, self.height, "yuv420p")
            pts = max(self._wall_pts(VIDEO_TIME_BASE), self._last_pts + 1)
            self._last_pts = pts
            out_frame.pts = pts
            out_frame.time_base = VIDEO_TIME_BASE
            force = self._keyframe.is_set()
            if force:
                self._keyframe.clear()
            capture_ms = time.time() * 1000.0
            for encoded in encoder.encode(out_frame, capture_ms, force or self.counter == 0):
                self._went_ok(backoff)
                self._publish(
                    EncodedFrame(
                        encoded.kind,
                        encoded.data,
                        encoded.pts,
                        encoded.time_base,
                        encoded.keyframe,
                        capture_ms,
                        {"counter": self.counter},
                    )
                )
            self.counter += 1

    # -- microphones ------------------------------------------------------------------
    def _audio_loop(self, frames: Iterable[Any], backoff: Backoff) -> None:
        assert self._encoder_factory is not None, "a microphone needs an encoder"
        favour_this_thread()
        encoder = self._encoder_factory()
        resampler = av.AudioResampler(
            format="s16", layout="mono", rate=48000, frame_size=AUDIO_SAMPLES
        )
        base: int | None = None  # wall-clock pts of this session's first sample
        for frame in frames:
            if self._stop.is_set():
                return
            for chunk in resampler.resample(frame):
                pcm = chunk.to_ndarray().reshape(-1).astype(np.int16)
                if self._audio_filter is not None:
                    pcm = self._audio_filter(pcm)
                level = self.meter.feed(pcm, pcm.size / 48000)
                self.silence.update(level, time.monotonic(), self._is_live())
                out = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
                out.sample_rate = 48000
                out.time_base = AUDIO_TIME_BASE
                if base is None:
                    base = max(self._wall_pts(AUDIO_TIME_BASE), self._last_pts + 1)
                capture_ms = time.time() * 1000.0
                for encoded in encoder.encode(out, capture_ms):
                    self._went_ok(backoff)
                    pts = max(base + encoded.pts, self._last_pts + 1)
                    self._last_pts = pts
                    self._publish(
                        EncodedFrame(
                            "audio",
                            encoded.data,
                            pts,
                            AUDIO_TIME_BASE,
                            True,
                            capture_ms,
                            {"counter": self.counter},
                        )
                    )
                    self.counter += 1


def _explain(spec: CaptureSpec, err: Exception) -> str:
    """One line for the technician: which device, what went wrong, what to try."""
    where = spec.url if spec.format is None else f"{spec.format}:{spec.url}"
    if isinstance(err, DeviceStalled):
        return f"{where}: {err}; retrying (check the cable, power and network of the device)"
    if isinstance(err, av.FFmpegError):
        reason = err.strerror or type(err).__name__
        return f"{where}: {reason}; retrying (is the device connected and switched on?)"
    return f"{where}: {type(err).__name__}: {err}; retrying"
