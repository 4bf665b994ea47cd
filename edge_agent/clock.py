"""Clock offset to the controller, measured on the control channel the NTP way.

Per heartbeat: t1 agent send, t2 controller receive, t3 controller send, t4 agent
receive. offset = ((t2 - t1) + (t3 - t4)) / 2, round trip = (t4 - t1) - (t3 - t2). The
estimate from the exchange with the shortest round trip among the recent ones is kept,
since queueing delay is what skews an NTP sample.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import time
from collections import deque

log = logging.getLogger(__name__)


class ClockEstimator:
    """Keeps the best recent offset sample."""

    def __init__(self, window: int = 8) -> None:
        self._sent: dict[int, float] = {}
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)

    def sent(self, seq: int, t1: float) -> None:
        """A heartbeat left at ``t1`` (agent clock)."""
        self._sent[seq] = t1
        for old in [s for s in self._sent if s < seq - 64]:
            del self._sent[old]

    def answered(self, seq: int, t2: float, t3: float, t4: float) -> None:
        """Its answer: controller receive ``t2`` and send ``t3``, agent receive ``t4``."""
        t1 = self._sent.pop(seq, None)
        if t1 is None:
            return
        rtt = (t4 - t1) - (t3 - t2)
        if rtt < 0:
            return
        self._samples.append((rtt, ((t2 - t1) + (t3 - t4)) / 2))

    @property
    def offset_s(self) -> float | None:
        """Controller clock minus agent clock, seconds; None before any sample."""
        if not self._samples:
            return None
        return min(self._samples)[1]

    @property
    def rtt_s(self) -> float | None:
        """Round trip of the sample the offset comes from."""
        if not self._samples:
            return None
        return min(self._samples)[0]


class ControllerClock:
    """The controller's time as the agent knows it: its own clock plus the measured offset.

    Lessons start and recordings are stamped on the controller's clock, so an agent whose
    clock is minutes wrong still records the right seconds. The last offset is kept in the
    state directory, so an agent restarted while the controller is down still uses it.
    """

    SAVE_CHANGE_S = 0.05

    def __init__(self, state_dir: pathlib.Path) -> None:
        self._path = state_dir / "clock-offset.json"
        self.offset_s = 0.0
        self.measured = False
        try:
            self.offset_s = float(json.loads(self._path.read_text())["offset_s"])
            self.measured = True
        except (OSError, ValueError, KeyError, TypeError):
            pass

    def now(self) -> float:
        """Controller time, Unix seconds."""
        return time.time() + self.offset_s

    def update(self, offset_s: float | None) -> None:
        """A fresh estimate from the control channel."""
        if offset_s is None:
            return
        changed = abs(offset_s - self.offset_s) >= self.SAVE_CHANGE_S or not self.measured
        self.offset_s, self.measured = offset_s, True
        if changed:
            try:
                tmp = self._path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"offset_s": offset_s, "at": time.time()}))
                os.replace(tmp, self._path)
            except OSError as err:
                log.warning("cannot keep the clock offset in %s: %s", self._path, err)
