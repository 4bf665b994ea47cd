"""Frame and bit rates from running counters, for heartbeats."""

from __future__ import annotations

import time


class RateMeter:
    """Turns cumulative (frames, bytes) counters into per-second rates between calls."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int, int]] = {}

    def rates(
        self, key: str, frames: int, nbytes: int, now: float | None = None
    ) -> tuple[float, float]:
        """(frames per second, bits per second) since the previous call for ``key``."""
        now = time.monotonic() if now is None else now
        previous = self._last.get(key)
        self._last[key] = (now, frames, nbytes)
        if previous is None or now <= previous[0] or frames < previous[1]:
            return 0.0, 0.0
        elapsed = now - previous[0]
        return ((frames - previous[1]) / elapsed, (nbytes - previous[2]) * 8 / elapsed)
