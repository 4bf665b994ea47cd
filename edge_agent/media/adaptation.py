"""Congestion control for the agent's own encoders, inside the network profile's ladder.

aiortc's bitrate caps do not apply to pre-encoded tracks, so the agent does it: each
video sender receives an estimate of its uplink: the built-in relay's REMB, or on Janus
(whose REMB is only the room's cap) one built from Janus's receiver reports
(``edge_agent.media_plane.congestion``), within that cap. The estimates add up to a
budget; audio is never touched (it is small and goes first), and the video encoders
share what is left by priority. Lower-priority sources (the student camera, then the
panel, then the board and wide cameras) drop first; the lead teacher's camera last.

Bitrates move between levels (the ladder's rungs and the geometric midpoints between
them), so an encoder is rebuilt only when a level changes.

- **Down.** A stream is congested when the receiver estimates less than it is actually
  being sent (below ``CONGESTED`` of the measured rate). Then the congested streams'
  estimates and the others' current levels make the budget, and the levels are shared
  again by priority. Content that compresses well and sends less than its level does
  not count as congestion.
- **Up.** Only when no stream is congested and every estimate has stayed well above
  what is sent (``HEADROOM_UP``) for ``up_hold_s``: one level, for the most important
  stream not at its top. The estimator only grows by about half again what it receives,
  so climbing is a step at a time by design. A level a stream was congested at is not
  tried again for ``BLOCK_S`` (doubling each time it fails again, up to ``BLOCK_MAX_S``),
  so a link that cannot carry it is not probed into congestion every few seconds.
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
CONGESTED = 0.85  # an estimate below this share of the sent rate means congestion
HEADROOM_UP = 1.2  # estimates this far above the sent rate allow the next level
BLOCK_S = 30.0
BLOCK_MAX_S = 300.0


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
    sending: int = 0  # measured bits/s when the estimate came
    blocked_until: dict[int, float] = field(default_factory=dict)  # level → time
    block_s: dict[int, float] = field(default_factory=dict)  # level → current block length
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
    _up_since: float | None = None

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

    def estimate(self, name: str, bps: int, now: float, sending: int) -> None:
        """A REMB estimate for one sender's stream, with what it was measured sending."""
        state = self.senders.get(name)
        if state is not None:
            state.estimate, state.estimate_at, state.sending = bps, now, sending

    def _fresh(self, now: float) -> list[SenderState]:
        return [
            s
            for s in self.senders.values()
            if s.estimate is not None and now - s.estimate_at <= ESTIMATE_TTL_S
        ]

    @staticmethod
    def _congested(s: SenderState) -> bool:
        return s.estimate is not None and s.sending > 0 and s.estimate < CONGESTED * s.sending

    def budget(self, now: float) -> int | None:
        """What the video may send now: congested streams' estimates, others' levels."""
        fresh = self._fresh(now)
        if not fresh:
            return None
        return sum(
            int(s.estimate * HEADROOM) if self._congested(s) and s.estimate else s.current
            for s in self.senders.values()
        )

    def _allocation(self, budget: int) -> dict[str, int]:
        """The highest level each sender can have within ``budget``, by priority."""
        order = sorted(self.senders.values(), key=lambda s: s.priority)
        alloc = {s.name: s.floor for s in order}
        left = budget - sum(alloc.values())
        for s in order:  # the teacher first gets as much as it can use
            for level in reversed(s.levels):
                extra = level - alloc[s.name]
                if extra <= left and level <= s.current:
                    left -= extra
                    alloc[s.name] = level
                    break
        return alloc

    def step(self, now: float) -> dict[str, int]:
        """New bitrates for the encoders that should change now."""
        fresh = self._fresh(now)
        if not fresh:
            return {}
        changes: dict[str, int] = {}
        adjustable = [s for s in self.senders.values() if s.adjustable]
        if any(self._congested(s) for s in fresh):
            self._up_since = None
            budget = self.budget(now) or 0
            for name, target in self._allocation(budget).items():
                s = self.senders[name]
                if s.adjustable and target < s.current and now - s.changed_at >= self.down_hold_s:
                    changes[name] = target
                    block = min(s.block_s.get(s.current, BLOCK_S / 2) * 2, BLOCK_MAX_S)
                    s.block_s[s.current] = block
                    s.blocked_until[s.current] = now + block
        elif all(
            s.estimate is not None and s.estimate >= HEADROOM_UP * max(s.sending, 1) for s in fresh
        ):
            self._up_since = now if self._up_since is None else self._up_since
            climbers = sorted(
                (
                    s
                    for s in adjustable
                    if s.current < s.levels[-1]
                    and now >= s.blocked_until.get(s.levels[s.levels.index(s.current) + 1], 0.0)
                ),
                key=lambda s: s.priority,
            )
            if climbers and now - self._up_since >= self.up_hold_s:
                s = climbers[0]
                if now - s.changed_at >= self.up_hold_s:
                    changes[s.name] = s.levels[s.levels.index(s.current) + 1]
                    self._up_since = None
        else:
            self._up_since = None
        for name, bps in changes.items():
            state = self.senders[name]
            state.current, state.changed_at = bps, now
            self.history.append((now, name, bps))
        return changes

    def total(self) -> int:
        """What the video encoders are set to send now, bits/s."""
        return sum(s.current for s in self.senders.values())
