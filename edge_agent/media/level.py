"""Microphone level: dBFS per 20 ms frame, a smoothed meter, and the silence alarm.

Policy: a live lesson whose microphone shows no signal above −45 dBFS for 120 s raises an
alarm (someone muted or unplugged the ceiling array). The alarm clears with the first
frame above the threshold.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

SILENCE_DBFS = -45.0
SILENCE_AFTER_S = 120.0
FLOOR_DBFS = -96.0


def dbfs(pcm: npt.NDArray[np.int16]) -> float:
    """RMS level of 16-bit samples relative to full scale (a full-scale sine is −3 dBFS)."""
    if pcm.size == 0:
        return FLOOR_DBFS
    rms = math.sqrt(float(np.mean(np.square(pcm.astype(np.float64)))))
    if rms <= 0:
        return FLOOR_DBFS
    return max(FLOOR_DBFS, 20 * math.log10(rms / 32768.0))


class LevelMeter:
    """Peak-hold meter: rises at once, falls 20 dB per second, like a studio meter."""

    def __init__(self, fall_db_per_s: float = 20.0) -> None:
        self._fall = fall_db_per_s
        self.level_dbfs = FLOOR_DBFS
        self.last_frame_dbfs = FLOOR_DBFS

    def feed(self, pcm: npt.NDArray[np.int16], duration_s: float) -> float:
        """Add one frame; returns the meter's reading."""
        level = dbfs(pcm)
        self.last_frame_dbfs = level
        self.level_dbfs = max(level, self.level_dbfs - self._fall * duration_s, FLOOR_DBFS)
        return self.level_dbfs


class SilenceAlarm:
    """Raised after ``after_s`` of live lesson with every frame below ``threshold_dbfs``."""

    def __init__(
        self, threshold_dbfs: float = SILENCE_DBFS, after_s: float = SILENCE_AFTER_S
    ) -> None:
        self.threshold = threshold_dbfs
        self.after_s = after_s
        self._quiet_since: float | None = None
        self.raised = False

    def update(self, level_dbfs: float, now: float, live: bool) -> bool:
        """Feed one frame's level at monotonic ``now``; returns whether the alarm is up."""
        if not live or level_dbfs > self.threshold:
            self._quiet_since = None
            self.raised = False
            return False
        if self._quiet_since is None:
            self._quiet_since = now
        self.raised = now - self._quiet_since >= self.after_s
        return self.raised

    def quiet_for(self, now: float) -> float:
        """Seconds of silence so far (0 when there is signal or no lesson)."""
        return 0.0 if self._quiet_since is None else now - self._quiet_since
