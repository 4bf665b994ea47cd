"""Mixes the remote classrooms' 10 ms chunks into what the speakers play (混音与限幅).

Each source is scaled by its gain (dB; ``-inf`` mutes it), the sum by the speakers'
volume, then a peak limiter keeps every sample at or below ``ceiling_dbfs``: the gain
drops at once on a peak (instant attack) and comes back exponentially (``release_ms``),
so one shouting room is turned down without clipping and without pumping the others.

Each source's short-term level (RMS over the last ~300 ms, before its gain) is kept so
the caller can tell which room is talking, even a ducked one.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt

RATE = 48000
LEVEL_CHUNKS = 30  # 300 ms of 10 ms chunks
FLOOR_DBFS = -96.0
FULL = 32768.0

Pcm = npt.NDArray[np.int16]


def db_to_gain(db: float) -> float:
    """Linear gain of ``db`` (``-inf`` → 0)."""
    return 0.0 if math.isinf(db) and db < 0 else float(10 ** (db / 20))


class Mixer:
    """Sum with per-source gains, volume, then a limiter (see module docstring)."""

    def __init__(
        self,
        *,
        volume_db: float = 0.0,
        ceiling_dbfs: float = -1.0,
        release_ms: float = 200.0,
    ) -> None:
        self.volume = db_to_gain(volume_db)
        self.ceiling = FULL * db_to_gain(ceiling_dbfs)
        self._release = math.exp(-1.0 / (release_ms / 1000 * RATE))  # per sample
        self._reduction = 0.0  # 1 - limiter gain at the end of the last chunk
        self._energy: dict[str, deque[float]] = {}
        self.limited_chunks = 0

    def mix(self, chunks: dict[str, Pcm], gains_db: dict[str, float]) -> Pcm:
        """One output chunk from each source's chunk (a source missing in gains: 0 dB)."""
        size = next(iter(chunks.values())).size if chunks else 480
        total = np.zeros(size, dtype=np.float32)
        for source, chunk in chunks.items():
            samples = chunk.astype(np.float32)
            self._meter(source, samples)
            gain = db_to_gain(gains_db.get(source, 0.0)) * self.volume
            if gain > 0.0:
                total += samples * np.float32(gain)
        return self._limit(total)

    def _limit(self, x: npt.NDArray[np.float32]) -> Pcm:
        # Needed reduction per sample r_req = max(0, 1 - ceiling/|x|); the envelope
        # r[n] = max(r_req[n], r[n-1] * a) is a running max of r_req[k] * a^(n-k),
        # computed without a Python loop as a^n * cummax(r_req[k] * a^-k).
        peak = np.abs(x)
        if self._reduction < 1e-6 and float(peak.max(initial=0.0)) <= self.ceiling:
            self._reduction = 0.0
            return np.rint(x).astype(np.int16)
        self.limited_chunks += 1
        with np.errstate(divide="ignore"):
            need = np.maximum(0.0, 1.0 - self.ceiling / np.maximum(peak, 1e-9))
        powers = self._release ** np.arange(1, x.size + 1, dtype=np.float64)
        held = np.maximum.accumulate(np.maximum(need / powers, self._reduction))
        reduction = held * powers
        self._reduction = float(reduction[-1])
        out = x * (1.0 - reduction).astype(np.float32)
        return np.clip(np.rint(out), -self.ceiling, self.ceiling).astype(np.int16)

    def _meter(self, source: str, samples: npt.NDArray[np.float32]) -> None:
        window = self._energy.get(source)
        if window is None:
            window = self._energy[source] = deque(maxlen=LEVEL_CHUNKS)
        window.append(float(np.dot(samples, samples)) / max(samples.size, 1))

    def level_dbfs(self, source: str) -> float:
        """The source's RMS over the last ~300 ms, dBFS (before its gain)."""
        window = self._energy.get(source)
        if not window:
            return FLOOR_DBFS
        mean = sum(window) / len(window)
        if mean <= 0:
            return FLOOR_DBFS
        return max(FLOOR_DBFS, 10 * math.log10(mean / FULL**2))

    def levels(self) -> dict[str, float]:
        """Every metered source's level, dBFS."""
        return {source: self.level_dbfs(source) for source in self._energy}

    def forget(self, source: str) -> None:
        """Stop metering a source."""
        self._energy.pop(source, None)
