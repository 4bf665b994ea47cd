"""Synthetic devices: test-pattern cameras and a tone-and-tick microphone.

Frames are built directly in YUV 4:2:0, so no colour conversion is needed before the
encoder, and each carries the burned-in counter/timestamp code for loss and latency.
"""

from __future__ import annotations

import fractions
import math
import time

import av
import cv2
import numpy as np

from edge_agent.media import barcode

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_RATE = 48000
AUDIO_SAMPLES = 960  # 20 ms


class SyntheticCamera:
    """A moving test pattern with the frame counter and capture time burned in."""

    def __init__(self, width: int, height: int, fps: int, label: str) -> None:
        self.width, self.height, self.fps, self.label = width, height, fps, label
        self._pts_step = 90000 // fps
        # A diagonal luma gradient twice as wide as the frame, scrolled by the counter.
        x = np.arange(width * 2, dtype=np.uint16)
        y = np.arange(height, dtype=np.uint16)[:, None]
        self._luma = (40 + ((x[None, :] + y) * 160 // (width + height)) % 180).astype(np.uint8)
        cx = np.arange(width, dtype=np.uint16)
        self._u = np.tile((64 + cx * 128 // max(width, 1)).astype(np.uint8), (height // 2, 1))
        self._v = np.tile((192 - cx * 128 // max(width, 1)).astype(np.uint8), (height // 2, 1))
        self._u = self._u[:, ::2]
        self._v = self._v[:, ::2]
        self._box = max(16, height // 8)

    def frame(self, counter: int, capture_ms: int) -> av.VideoFrame:
        """The frame for tick ``counter``, captured at ``capture_ms``."""
        w, h = self.width, self.height
        buf = np.empty((h * 3 // 2, w), dtype=np.uint8)
        shift = (counter * 4) % w
        buf[:h] = self._luma[:, shift : shift + w]
        # a bright box bouncing left-right, so motion is obvious
        span = max(1, w - self._box)
        pos = counter * 6 % (2 * span)
        x0 = pos if pos < span else 2 * span - pos
        y0 = h // 2 - self._box // 2
        buf[y0 : y0 + self._box, x0 : x0 + self._box] = 235
        chroma = buf[h:].reshape(2, h // 2, w // 2)
        chroma[0] = self._u
        chroma[1] = self._v
        y_plane = buf[:h]
        barcode.stamp(y_plane, counter, capture_ms)
        clock = time.strftime("%H:%M:%S", time.localtime(capture_ms / 1000))
        text = f"{self.label}  #{counter}  {clock}.{capture_ms % 1000:03d}"
        scale = max(0.5, h / 720)
        cv2.putText(
            y_plane,
            text,
            (8, barcode.HEIGHT + int(30 * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            235,
            max(1, int(2 * scale)),
            cv2.LINE_8,
        )
        frame = av.VideoFrame.from_ndarray(buf, format="yuv420p")
        frame.pts = counter * self._pts_step
        frame.time_base = VIDEO_TIME_BASE
        return frame


class SyntheticMicrophone:
    """A −12 dBFS sine tone with a louder 10 ms click at every tick, in 20 ms frames.

    Given the frame's capture time, the clicks fall on whole seconds of the wall clock,
    so whoever hears one (a speaker's monitor at the other room) knows when it was said.
    """

    def __init__(
        self, sample_rate: int = AUDIO_RATE, tone_hz: float = 440.0, tick_every_s: float = 1.0
    ) -> None:
        self.sample_rate = sample_rate
        self.tone_hz = tone_hz
        self.tick_every = int(tick_every_s * sample_rate)
        self._amp = 32767 * 10 ** (-12 / 20)

    def frame(self, index: int, capture_ms: float | None = None) -> av.AudioFrame:
        """The ``index``-th 20 ms frame (phase-continuous), captured at ``capture_ms``."""
        start = index * AUDIO_SAMPLES
        n = np.arange(start, start + AUDIO_SAMPLES)
        samples = self._amp * np.sin(2 * math.pi * self.tone_hz * n / self.sample_rate)
        click_len = self.sample_rate // 100
        if capture_ms is None:
            in_click = (n % self.tick_every) < click_len
        else:  # on the wall clock: sample i of this frame is heard at capture + i / rate
            at = round(capture_ms * self.sample_rate / 1000) + np.arange(AUDIO_SAMPLES)
            in_click = (at % self.tick_every) < click_len
        samples = np.where(
            in_click,
            0.9 * 32767 * np.sign(np.sin(2 * math.pi * 2000 * n / self.sample_rate)),
            samples,
        )
        pcm = samples.astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = start
        frame.time_base = fractions.Fraction(1, self.sample_rate)
        return frame
