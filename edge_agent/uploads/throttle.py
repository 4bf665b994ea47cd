"""Upload rates: the configured limits and a token bucket that keeps uploads under a byte
rate (None: no limit)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """Shared by every upload of the agent, so the limit holds for the sum of them."""

    def __init__(self, rate: Callable[[], float | None], burst_s: float = 0.25) -> None:
        self._rate = rate
        self._burst_s = burst_s
        self._tokens = 0.0
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def limited(self) -> bool:
        """Is a limit in force right now?"""
        return self._rate() is not None

    async def take(self, n: int) -> None:
        """Wait until ``n`` bytes may be sent."""
        async with self._lock:
            while True:
                rate = self._rate()
                now = time.monotonic()
                if rate is None:
                    self._stamp = now
                    return
                self._tokens = min(
                    self._tokens + (now - self._stamp) * rate, max(rate * self._burst_s, n)
                )
                self._stamp = now
                if self._tokens >= n:
                    self._tokens -= n
                    return
                await asyncio.sleep((n - self._tokens) / rate)


class UploadLimits:
    """Upload rate limits, bytes/s (None: unlimited): lower while a lesson is live."""

    def __init__(self, live_kbps: int = 2000, idle_kbps: int = 0) -> None:
        self.live_bps = live_kbps * 1000 / 8 if live_kbps > 0 else None
        self.idle_bps = idle_kbps * 1000 / 8 if idle_kbps > 0 else None
