"""The rollout planner: what a running rollout does next, as a pure function of its rings,
its classrooms' progress, their lessons, the maintenance window and the clock.

A rollout updates one ring at a time (pilot, early, general). A classroom of the ring is
offered the release only inside the maintenance window, while online, and never during a
lesson nor within ``LESSON_GUARD`` before one. The ring is done when every classroom of it
reported healthy on the new version; then the next ring with classrooms starts. Any
failure in the ring (a rollback, a failed install, no healthy report within the health
deadline) pauses the rollout there, for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocols.releases import RINGS

LESSON_GUARD = timedelta(minutes=15)
FAILED_STATES = frozenset({"failed", "rolled_back"})
WAITING_STATES = frozenset({"offered", "installing"})
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class Window:
    """A daily maintenance window in local time; it may wrap midnight (22:00–06:00).
    Equal bounds: the whole day."""

    start: str
    end: str
    timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        for name, value in (("start", self.start), ("end", self.end)):
            if not _HHMM.match(value):
                raise ValueError(f"maintenance window {name} {value!r} must be HH:MM (00:00–23:59)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"maintenance window time zone {self.timezone!r} is not known "
                "(an IANA name such as Asia/Shanghai)"
            ) from None

    def contains(self, now: datetime) -> bool:
        """Whether ``now`` (aware) falls inside the window."""
        local = now.astimezone(ZoneInfo(self.timezone)).time()
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        if start == end:
            return True
        if start < end:
            return start <= local < end
        return local >= start or local < end

    def __str__(self) -> str:
        return f"{self.start}–{self.end} {self.timezone}"


@dataclass(frozen=True)
class Target:
    """One classroom's progress in the rollout."""

    classroom_id: str
    ring: str
    state: str  # pending | offered | installing | healthy | rolled_back | failed
    offered_at: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class Busy:
    """A lesson that holds a classroom from ``start`` to ``end``."""

    start: datetime
    end: datetime
    lesson_id: str = ""


@dataclass
class Plan:
    """What the rollout does now."""

    offer: list[str] = field(default_factory=list)  # classrooms to offer the release
    timed_out: list[str] = field(default_factory=list)  # offered, no healthy report in time
    pause_reason: str = ""  # non-empty: pause the rollout at its ring
    next_ring: str | None = None  # the ring to move to (its classrooms are offered next)
    done: bool = False  # every ring is healthy
    waiting: dict[str, str] = field(default_factory=dict)  # classroom → why not offered yet


def free_for_update(classroom_id: str, busy: Sequence[Busy], now: datetime) -> str:
    """Why the classroom may not update now ('' when it may): in a lesson, or one starts
    within LESSON_GUARD."""
    for b in busy:
        if b.start - LESSON_GUARD <= now < b.end:
            what = f"lesson {b.lesson_id}" if b.lesson_id else "a lesson"
            if now >= b.start:
                return f"{what} under way until {b.end.isoformat(timespec='minutes')}"
            return f"{what} starts at {b.start.isoformat(timespec='minutes')}"
    return ""


def may_offer(
    classroom_id: str,
    window: Window,
    busy: Mapping[str, Sequence[Busy]],
    online: Collection[str],
    now: datetime,
) -> str:
    """Why the classroom may not be offered the release now ('' when it may)."""
    if not window.contains(now):
        return f"outside the maintenance window {window}"
    if classroom_id not in online:
        return "agent offline"
    return free_for_update(classroom_id, busy.get(classroom_id, ()), now)


def plan(
    ring: str,
    targets: Sequence[Target],
    window: Window,
    busy: Mapping[str, Sequence[Busy]],
    online: Collection[str],
    now: datetime,
    health_deadline: timedelta,
) -> Plan:
    """The next step of a running rollout at ``ring``."""
    out = Plan()
    in_ring = [t for t in targets if t.ring == ring]
    for t in in_ring:
        if t.state in WAITING_STATES and t.offered_at and now - t.offered_at > health_deadline:
            out.timed_out.append(t.classroom_id)
    failed = [t for t in in_ring if t.state in FAILED_STATES]
    if failed or out.timed_out:
        parts = [f"{t.classroom_id} {t.state.replace('_', ' ')}: {t.detail}" for t in failed]
        parts += [
            f"{c} did not report healthy within {health_deadline.total_seconds():.0f} s"
            for c in out.timed_out
        ]
        out.pause_reason = f"ring {ring}: " + "; ".join(parts)
        return out
    if all(t.state == "healthy" for t in in_ring):
        later = RINGS[RINGS.index(ring) + 1 :]
        rings_left = [r for r in later if any(t.ring == r for t in targets)]
        if rings_left:
            out.next_ring = rings_left[0]
        else:
            out.done = True
        return out
    for t in in_ring:
        if t.state != "pending":
            continue
        why = may_offer(t.classroom_id, window, busy, online, now)
        if why:
            out.waiting[t.classroom_id] = why
        else:
            out.offer.append(t.classroom_id)
    return out


def ring_of(classroom_id: str, school: str, rings: Mapping[tuple[str, str], str]) -> str:
    """A classroom's ring: its own, else its school's, else general."""
    return rings.get(("classroom", classroom_id)) or rings.get(("school", school)) or "general"
