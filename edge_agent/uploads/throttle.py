"""A token bucket that keeps uploads under a byte rate (None: no limit)."""

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
