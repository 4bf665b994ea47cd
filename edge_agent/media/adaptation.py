"""Congestion control for the agent's own encoders, inside the network profile's ladder.

aiortc's bitrate caps do not apply to pre-encoded tracks, so the agent does it: each
video sender receives the relay's bitrate estimate (REMB). The estimates add up to a
budget; audio is never touched (it is small and goes first), and the video encoders
share what is left by priority. Lower-priority sources (the student camera, then the
panel, then the board and wide cameras) drop first; the lead teacher's camera last.

Bitrates move between levels (the ladder's rungs and the geometric midpoints between
them), so an encoder is rebuilt only when a level changes. Down-switches are immediate;
up-switches wait until the budget has allowed the next level for ``up_hold_s`` and
climb one level at a time, because the estimate itself only grows by probing with what
is sent.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from protocols.network_profile import NetworkProfile

# Lower numbers are protected longer.
ROLE_PRIORITY = {"teacher": 0, "wide": 1, "board": 2, "content": 3, "student": 4}
ESTIMATE_TTL_S = 5.0  # an estimate older than this is not used
HEADROOM = 0.9  # use this share of the estimate, leaving room for audio bursts and RTCP


@dataclass
class SenderState:
    """One video encoder under control."""

    name: str
    role: str
    levels: list[int]  # bits/s, ascending
    current: int
    adjustable: bool = True  # False for a passed-through camera
    estimate: int | None = None
    estimate_at: float = -math.inf
    up_since: float | None = None
    changed_at: float = -math.inf

    @property
    def priority(self) -> int:
        """Drop order: higher numbers drop first."""
        return ROLE_PRIORITY.get(self.role, 2)

    @property
    def floor(self) -> int:
        """The lowest level."""
        return self.levels[0]


def levels_for(ladder_kbps: list[int], ceiling_bps: int) -> list[int]:
    """Rung bitrates and the geometric midpoints between them, up to ``ceiling_bps``."""
    rungs = sorted({k * 1000 for k in ladder_kbps})
    points = set(rungs)
    for low, high in itertools.pairwise(rungs):
        points.add(int(math.sqrt(low * high)) // 1000 * 1000)
    out = sorted(p for p in points if p <= ceiling_bps)
    return out or [ceiling_bps]


def rung_name(profile: NetworkProfile | None, bps: int) -> str:
    """The highest rung whose bitrate ``bps`` reaches (the lowest if none)."""
    if profile is None:
        return f"{bps // 1000} kbps"
    for rung in profile.ladder:
        if bps >= rung.kbps * 1000:
            return rung.name
    return profile.ladder[-1].name


@dataclass
class RateAdapter:
    """Shares the relay's bitrate estimates among the video encoders by priority."""

    up_hold_s: float = 4.0
    down_hold_s: float = 1.0
    senders: dict[str, SenderState] = field(default_factory=dict)
    history: list[tuple[float, str, int]] = field(default_factory=list)

    def add(
        self,
        name: str,
        role: str,
        device_bps: int,
        profile: NetworkProfile | None,
        adjustable: bool = True,
    ) -> SenderState:
        """Put an encoder under control, starting at its top level."""
        if profile is not None:
            levels = levels_for([r.kbps for r in profile.ladder], device_bps)
        else:  # no profile: between 30 % and 100 % of the device's bitrate
            levels = levels_for([max(100, device_bps // 3333), device_bps // 1000], device_bps)
        state = SenderState(name, role, levels, levels[-1], adjustable)
        if not adjustable:
            state.levels = [device_bps]
            state.current = device_bps
        self.senders[name] = state
        return state

    def estimate(self, name: str, bps: int, now: float) -> None:
        """A REMB estimate for one sender's stream."""
        state = self.senders.get(name)
        if state is not None:
            state.estimate, state.estimate_at = bps, now

    def budget(self, now: float) -> int | None:
        """What the estimates allow for video in total (None: no fresh estimate)."""
        fresh = [s.estimate for s in self.senders.values() if now - s.estimate_at <= ESTIMATE_TTL_S]
        if not fresh:
            return None
        return int(sum(e for e in fresh if e is not None) * HEADROOM)

    def _allocation(self, budget: int) -> dict[str, int]:
        """The highest level each sender can have within ``budget``, by priority."""
        order = sorted(self.senders.values(), key=lambda s: s.priority)
        alloc = {s.name: s.floor for s in order}
        left = budget - sum(alloc.values())
        for s in order:  # the teacher first gets as much as it can use
            for level in reversed(s.levels):
                extra = level - alloc[s.name]
                if extra <= left:
                    left -= extra
                    alloc[s.name] = level
                    break
        return alloc

    def step(self, now: float) -> dict[str, int]:
        """New bitrates for the encoders that should change now."""
        budget = self.budget(now)
        if budget is None:
            return {}
        changes: dict[str, int] = {}
        for name, target in self._allocation(budget).items():
            s = self.senders[name]
            if not s.adjustable or target == s.current:
                s.up_since = None
                continue
            if target < s.current:
                s.up_since = None
                if now - s.changed_at >= self.down_hold_s:
                    changes[name] = target
            else:
                s.up_since = now if s.up_since is None else s.up_since
                if now - s.up_since >= self.up_hold_s and now - s.changed_at >= self.up_hold_s:
                    changes[name] = s.levels[s.levels.index(s.current) + 1]
                    s.up_since = None
        for name, bps in changes.items():
            state = self.senders[name]
            state.current, state.changed_at = bps, now
            self.history.append((now, name, bps))
        return changes

    def total(self) -> int:
        """What the video encoders are set to send now, bits/s."""
        return sum(s.current for s in self.senders.values())
