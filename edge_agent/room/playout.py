"""Adaptive playout buffer (自适应播放缓冲) for one remote classroom's sound.

Decoded frames go in as they arrive from the network (any layout, made 48 kHz mono
int16); 10 ms chunks come out on the speaker's clock. The buffer holds a *target* depth
that follows the measured arrival jitter:

- jitter: each frame's arrival minus the media time received so far gives its relative
  delay; over the last ~5 s the 95th percentile above the minimum is the jitter, and the
  target is ``jitter + 10 ms`` bounded to 20..200 ms;
- underrun: when the buffer runs dry, silence is played (concealment) until it has
  refilled to the target; the inserted gap is measured;
- too deep (after a burst, or a sender whose clock runs fast): while the depth stays
  above the target, one 10 ms chunk in five is dropped, crossfaded into the next one
  so the cut does not click, quiet chunks first.

Pure logic with an injectable clock (``clock``); thread-safe (frames are pushed from the
network thread and pulled from the playout thread).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt

RATE = 48000
CHUNK = RATE // 100  # 10 ms
CHUNK_S = CHUNK / RATE
WINDOW = 250  # arrivals kept for the jitter estimate (5 s of 20 ms frames)
RESET_AFTER_S = 1.0  # a sender silent this long starts a new jitter measurement
HARD_CAP_S = 1.0  # beyond this depth the excess is cut at once
QUIET = 32768 * 10 ** (-40 / 20)  # RMS below -40 dBFS: a chunk that can go unnoticed

Pcm = npt.NDArray[np.int16]


@dataclass(frozen=True)
class PlayoutStats:
    """What a buffer has done so far."""

    depth_ms: float
    target_ms: float
    jitter_ms: float
    underruns: int
    gap_max_ms: float
    concealed_ms: float
    dropped_ms: float


class PlayoutBuffer:
    """Frames in as they arrive, 10 ms chunks out on the speaker's clock (see module doc)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        min_ms: float = 40.0,
        max_ms: float = 200.0,
        # Above the measured jitter: one 20 ms packet (Opus frames arrive whole, and the
        # speaker takes 10 ms at a time) — a smaller margin underruns on every late packet.
        margin_ms: float = 20.0,
    ) -> None:
        self._clock = clock
        self._min, self._max, self._margin = min_ms / 1000, max_ms / 1000, margin_ms / 1000
        self._lock = threading.Lock()
        self._chunks: deque[Pcm] = deque()
        self._partial = np.zeros(0, dtype=np.int16)
        self._resampler: av.AudioResampler | None = None
        self._delays: deque[float] = deque(maxlen=WINDOW)
        self._media_s = 0.0
        self._first_arrival: float | None = None
        self._last_arrival = -1e9
        self._target = self._min
        self._arrivals = 0
        self._jitter = 0.0
        self._playing = False  # False until filled to the target (start, after underrun)
        self._gap = 0  # chunks of silence inserted in the current underrun
        self._above = 0  # pulls in a row that found the depth above the target
        self.underruns = 0
        self.gap_max_chunks = 0
        self.concealed_chunks = 0
        self.dropped_chunks = 0

    # -- input --------------------------------------------------------------------
    def push(self, frame: av.AudioFrame, arrival: float | None = None) -> None:
        """Add a decoded frame that arrived at ``arrival`` (the clock's now by default)."""
        pcm = self._to_mono(frame)
        self.push_pcm(pcm, self._clock() if arrival is None else arrival)

    def push_pcm(self, pcm: Pcm, arrival: float) -> None:
        """Add 48 kHz mono samples that arrived at ``arrival``."""
        with self._lock:
            self._measure(arrival, pcm.size / RATE)
            data = np.concatenate([self._partial, pcm]) if self._partial.size else pcm
            whole = data.size - data.size % CHUNK
            for start in range(0, whole, CHUNK):
                self._chunks.append(data[start : start + CHUNK])
            self._partial = data[whole:].copy()
            excess = len(self._chunks) - int(HARD_CAP_S / CHUNK_S)
            for _ in range(max(0, excess)):
                self._chunks.popleft()
                self.dropped_chunks += 1

    def _to_mono(self, frame: av.AudioFrame) -> Pcm:
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        try:
            out = self._resampler.resample(frame)
        except ValueError:
            # The sender changed its format mid-stream: start a resampler for the new one.
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            out = self._resampler.resample(frame)
        if not out:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).astype(np.int16)

    def _measure(self, arrival: float, duration_s: float) -> None:
        if arrival - self._last_arrival > RESET_AFTER_S or self._first_arrival is None:
            self._delays.clear()
            self._first_arrival, self._media_s = arrival, 0.0
        self._last_arrival = arrival
        self._delays.append(arrival - self._first_arrival - self._media_s)
        self._media_s += duration_s
        self._arrivals += 1
        # The percentile is re-estimated every 10 arrivals (200 ms): the sort costs CPU.
        if len(self._delays) >= 2 and (self._arrivals % 10 == 0 or len(self._delays) < 20):
            ordered = np.sort(np.fromiter(self._delays, dtype=np.float64))
            self._jitter = float(ordered[int(0.95 * (ordered.size - 1))] - ordered[0])
            self._target = min(self._max, max(self._min, self._jitter + self._margin))

    # -- output -------------------------------------------------------------------
    def pull(self) -> Pcm:
        """The next 10 ms to play (silence while empty or refilling)."""
        with self._lock:
            depth = len(self._chunks) * CHUNK_S
            if not self._playing:
                if depth + 1e-9 < self._target:
                    if self._gap or self.underruns:
                        self._conceal()
                    return np.zeros(CHUNK, dtype=np.int16)
                self._playing, self._gap = True, 0
            if not self._chunks:
                self._playing = False
                self.underruns += 1
                self._conceal()
                return np.zeros(CHUNK, dtype=np.int16)
            chunk = self._chunks.popleft()
            above = bool(self._chunks) and depth - CHUNK_S > self._target + CHUNK_S
            self._above = self._above + 1 if above else 0
            if self._should_drop(depth, chunk):
                following = self._chunks.popleft()
                self.dropped_chunks += 1
                self._above = 0
                return _crossfade(chunk, following)
            return chunk

    def _conceal(self) -> None:
        self._gap += 1
        self.concealed_chunks += 1
        self.gap_max_chunks = max(self.gap_max_chunks, self._gap)

    def _should_drop(self, depth: float, chunk: Pcm) -> bool:
        # Above the target for 50 ms in a row; at most one chunk in five (20 % faster).
        if self._above < 5:
            return False
        quiet = float(np.sqrt(np.mean(np.square(chunk.astype(np.float32))))) < QUIET
        # Quiet chunks go first; loud ones only when well above the target, or later.
        return quiet or depth > self._target + 0.06 or self._above >= 25

    # -- reading ------------------------------------------------------------------
    def stats(self) -> PlayoutStats:
        """Depth, target, jitter and what concealment and dropping have done."""
        with self._lock:
            return PlayoutStats(
                depth_ms=round((len(self._chunks) * CHUNK + self._partial.size) / RATE * 1000, 1),
                target_ms=round(self._target * 1000, 1),
                jitter_ms=round(self._jitter * 1000, 1),
                underruns=self.underruns,
                gap_max_ms=self.gap_max_chunks * CHUNK_S * 1000,
                concealed_ms=self.concealed_chunks * CHUNK_S * 1000,
                dropped_ms=self.dropped_chunks * CHUNK_S * 1000,
            )


def _crossfade(a: Pcm, b: Pcm) -> Pcm:
    """10 ms that start like ``a`` and end like ``b``: two chunks in the time of one."""
    ramp = np.linspace(0.0, 1.0, a.size, dtype=np.float32)
    mixed = a.astype(np.float32) * (1 - ramp) + b.astype(np.float32) * ramp
    return np.clip(np.rint(mixed), -32768, 32767).astype(np.int16)
