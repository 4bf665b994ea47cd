"""Coalescing the audit rows of repeated reads: a browser playing a recording sends a
byte-range request every few seconds, and each would otherwise be a row.

One row per viewer (session, or token user) per target per WINDOW_S; the reads folded
into the window are counted, and the next row carries their number and bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

WINDOW_S = 300.0
MAX_KEYS = 10_000  # a bound on memory: past it, the oldest windows are forgotten

# What a handler adds to its read's audit row (bytes served, seconds of media, type).
VIEW_DETAIL = web.RequestKey("view_detail", dict[str, Any])


@dataclass
class _Window:
    opened: float
    requests: int = 0
    bytes: int = 0
    seconds: float = 0.0


class ViewingLedger:
    """Decides which reads get a row; used from the event loop only."""

    def __init__(
        self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window_s = window_s
        self._clock = clock
        self._open: dict[tuple[str, str], _Window] = {}

    def note(self, viewer: str, target: str, detail: dict[str, Any]) -> dict[str, Any] | None:
        """The detail of a new row for this read, or None if the viewer's open window on
        ``target`` already has one (the read is then counted into the next row)."""
        now = self._clock()
        key = (viewer, target)
        window = self._open.get(key)
        if window is not None and now - window.opened < self._window_s:
            window.requests += 1
            window.bytes += int(detail.get("bytes", 0) or 0)
            window.seconds += float(detail.get("seconds", 0.0) or 0.0)
            return None
        out = dict(detail)
        if window is not None and window.requests:
            out["folded"] = {
                "requests": window.requests,
                "bytes": window.bytes,
                "seconds": round(window.seconds, 1),
                "window_s": self._window_s,
            }
        self._open.pop(key, None)
        self._open[key] = _Window(now)
        if len(self._open) > MAX_KEYS:
            self._forget(now)
        return out

    def _forget(self, now: float) -> None:
        for key in [k for k, w in self._open.items() if now - w.opened >= self._window_s]:
            del self._open[key]
        while len(self._open) > MAX_KEYS:
            del self._open[next(iter(self._open))]
