"""Per-device supervision: the state a device is in, since when, and how long to back off.

Each device runs on its own. A device that fails or disappears is reported (``lost`` once
it had worked, ``failed`` if it never came up), retried with a capped backoff, and marked
``ok`` again as soon as it produces media. Transitions are kept with their times so the
heartbeat, the CLI and the benchmarks can say how fast a loss was seen and a return
picked up.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: Retry delays after a failure: fast at first, then at most ``BACKOFF_CAP_S`` apart, so a
#: camera that comes back is picked up within a few seconds.
BACKOFF_FIRST_S = 0.5
BACKOFF_CAP_S = 3.0


@dataclass
class Transition:
    """One change of state, on the monotonic clock and the wall clock."""

    state: str
    detail: str
    at_monotonic: float
    at_wall: float


@dataclass
class DeviceHealth:
    """Thread-safe state of one device, with its history of transitions."""

    name: str
    state: str = "idle"
    detail: str = ""
    failures: int = 0
    history: list[Transition] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, state: str, detail: str = "") -> None:
        """Record a new state (a repeat of the current one only updates the detail)."""
        with self._lock:
            if state == self.state:
                self.detail = detail
                return
            previous = self.state
            self.state, self.detail = state, detail
            self.history.append(Transition(state, detail, time.monotonic(), time.time()))
            del self.history[:-50]
        if state in ("lost", "failed"):
            log.warning("device %s %s: %s", self.name, state, detail)
        elif state == "ok" and previous in ("lost", "failed"):
            log.info("device %s is back", self.name)

    def fault(self, detail: str) -> None:
        """The device stopped or would not open: ``lost`` if it had worked, else ``failed``."""
        self.failures += 1
        worked = any(t.state == "ok" for t in self.history)
        self.set("lost" if worked else "failed", detail)

    def last(self, state: str) -> Transition | None:
        """The latest transition into ``state``."""
        with self._lock:
            for t in reversed(self.history):
                if t.state == state:
                    return t
        return None


class Backoff:
    """Exponential retry delay, reset once the device works again."""

    def __init__(self, first: float = BACKOFF_FIRST_S, cap: float = BACKOFF_CAP_S) -> None:
        self._first, self._cap = first, cap
        self._next = first

    def next(self) -> float:
        """The delay before the next attempt; doubles up to the cap."""
        delay = self._next
        self._next = min(self._next * 2, self._cap)
        return delay

    def reset(self) -> None:
        """The device works: the next failure starts from the first delay again."""
        self._next = self._first
