"""Runs one device: capture, encode once, publish — in its own thread, supervised.

A device that fails is reported and retried with backoff; the other runners keep going.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import av
import numpy as np

from edge_agent.media.bus import FrameBus
from edge_agent.media.level import LevelMeter, SilenceAlarm
from protocols.media.encoded_frame import EncodedFrame

log = logging.getLogger(__name__)


class VideoDevice(Protocol):
    """Anything that can produce a video frame on demand."""

    def frame(self, counter: int, capture_ms: int) -> av.VideoFrame:
        """The frame for tick ``counter`` captured at ``capture_ms``."""


class AudioDevice(Protocol):
    """Anything that can produce 20 ms of audio on demand."""

    def frame(self, index: int, capture_ms: float | None = None) -> av.AudioFrame:
        """The ``index``-th 20 ms frame."""


class FrameEncoder(Protocol):
    """An encoder that turns frames into encoded frames."""

    def encode(
        self, frame: av.VideoFrame, capture_ms: float, force_keyframe: bool = False
    ) -> list[EncodedFrame]:
        """Encode one frame."""


class SourceRunner:
    """Paces a device at its frame rate, encodes each frame once and publishes it."""

    def __init__(
        self,
        name: str,
        kind: str,
        device: object,
        encoder: object,
        fps: float,
        bus: FrameBus,
        loop: asyncio.AbstractEventLoop,
        width: int = 0,
        height: int = 0,
        is_live: Callable[[], bool] = lambda: False,
    ) -> None:
        self.name = name
        self.width = width
        self.height = height
        self.kind = kind
        self._device = device
        self._encoder = encoder
        self.fps = fps
        self._interval = 1.0 / fps
        self.bus = bus
        self._loop = loop
        self._stop = threading.Event()
        self._keyframe = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = "idle"
        self.detail = ""
        self.frames = 0
        self.late = 0
        self.failures = 0
        self.meter = LevelMeter()
        self.silence = SilenceAlarm()
        self._is_live = is_live

    @property
    def level_dbfs(self) -> float | None:
        """The microphone meter's reading (None for video)."""
        return self.meter.level_dbfs if self.kind == "audio" else None

    def start(self) -> None:
        """Start the capture thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the capture thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.state = "idle"

    def set_bitrate(self, bps: int) -> bool:
        """Move the video encoder's bitrate (congestion control); False if it cannot."""
        retarget = getattr(self._encoder, "retarget", None)
        if self.kind != "video" or retarget is None:
            return False
        retarget(bps)
        return True

    def request_keyframe(self) -> None:
        """Make the next encoded video frame a keyframe (PLI, new subscriber, recording)."""
        self._keyframe.set()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self.state = "ok"
                self._capture_loop()
                return
            except Exception as err:
                self.failures += 1
                self.state = "failed"
                self.detail = f"{type(err).__name__}: {err}"
                log.exception("device %s failed; retrying in %.1f s", self.name, backoff)
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 10.0)

    def _capture_loop(self) -> None:
        counter = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            capture_ms = time.time() * 1000.0
            if self.kind == "video":
                frame = self._device.frame(counter, int(capture_ms))  # type: ignore[attr-defined]
                force = self._keyframe.is_set()
                if force:
                    self._keyframe.clear()
                out = self._encoder.encode(frame, capture_ms, force)  # type: ignore[attr-defined]
            else:
                frame = self._device.frame(counter, capture_ms)  # type: ignore[attr-defined]
                pcm = frame.to_ndarray().reshape(-1).astype(np.int16)
                level = self.meter.feed(pcm, pcm.size / frame.sample_rate)
                self.silence.update(level, time.monotonic(), self._is_live())
                out = self._encoder.encode(frame, capture_ms)  # type: ignore[attr-defined]
            for encoded in out:
                stamped = EncodedFrame(
                    encoded.kind,
                    encoded.data,
                    encoded.pts,
                    encoded.time_base,
                    encoded.keyframe,
                    encoded.capture_ms,
                    {"counter": counter},
                )
                self._loop.call_soon_threadsafe(self.bus.publish, stamped)
            counter += 1
            self.frames = counter
            next_at += self._interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -self._interval:
                # Running behind (CPU starved): skip ticks rather than queue them up.
                skipped = int(-delay / self._interval)
                self.late += skipped
                counter += skipped
                next_at += skipped * self._interval
