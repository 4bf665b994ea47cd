"""The live view of bandwidth per school: what the planner booked for the lessons under
way (at the rung each was placed on) against what the agents measure sending.

Measured figures come from the latest heartbeat of each online classroom, stored in
``Classroom.health``: the sum of its send-direction tracks' ``bitrate_bps``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from controller.db.models import Classroom, Lesson
from controller.db.session import as_utc, utcnow
from controller.lessons.states import ACTIVE_STATES
from controller.timetable.loading import candidate_of, rooms_and_uplinks
from controller.timetable.planner import Planner

# Without the daemon's presence, a classroom counts as online if it said so this recently.
STALE_AFTER = timedelta(seconds=30)


@dataclass
class ClassroomBandwidth:
    """One classroom's planned and measured send bitrate, kbps."""

    classroom: str
    online: bool
    profile: str | None
    cap_kbps: int | None
    planned_kbps: int = 0
    measured_kbps: float = 0.0
    lessons: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """JSON view."""
        return {
            "classroom": self.classroom,
            "online": self.online,
            "profile": self.profile,
            "cap_kbps": self.cap_kbps,
            "planned_kbps": self.planned_kbps,
            "measured_kbps": round(self.measured_kbps, 1),
            "lessons": self.lessons,
        }


@dataclass
class SchoolBandwidth:
    """A school's uplink against what its classrooms are booked and measured to send."""

    school: str
    uplink_kbps: int
    classrooms: list[ClassroomBandwidth] = field(default_factory=list)

    @property
    def planned_kbps(self) -> int:
        """What the planner booked for the lessons under way."""
        return sum(c.planned_kbps for c in self.classrooms)

    @property
    def measured_kbps(self) -> float:
        """What the online classrooms' agents report sending."""
        return sum(c.measured_kbps for c in self.classrooms)

    def document(self) -> dict[str, Any]:
        """JSON view."""
        return {
            "school": self.school,
            "uplink_kbps": self.uplink_kbps,
            "planned_kbps": self.planned_kbps,
            "measured_kbps": round(self.measured_kbps, 1),
            "classrooms": [c.document() for c in self.classrooms],
        }


def measured_send_kbps(health: object) -> float:
    """kbps of the send-direction tracks in a stored heartbeat (0 when it has none)."""
    media = health.get("media") if isinstance(health, dict) else None
    if not isinstance(media, list):
        return 0.0
    total = 0.0
    for track in media:
        if isinstance(track, dict) and track.get("direction") == "send":
            bps = track.get("bitrate_bps")
            if isinstance(bps, int | float):
                total += bps
    return total / 1000


def live_lessons(db: Session, now: datetime) -> list[Lesson]:
    """Lessons under way: marked live, or active and within their times."""
    at = now.astimezone(UTC)
    query = select(Lesson).where(
        or_(
            Lesson.state == "live",
            and_(Lesson.state.in_(ACTIVE_STATES), Lesson.start_at <= at, Lesson.end_at > at),
        )
    )
    return list(db.scalars(query).all())


def bandwidth_view(
    db: Session, online: set[str] | None = None, now: datetime | None = None
) -> list[SchoolBandwidth]:
    """Every school with its classrooms, planned against measured.

    ``online``: the classrooms the daemon's presence holds online; None reads the stored
    online flag, trusted if the classroom was heard from within ``STALE_AFTER``."""
    now = now or utcnow()
    rooms, uplinks = rooms_and_uplinks(db)
    planner = Planner(rooms, uplinks)
    rows: dict[str, ClassroomBandwidth] = {}
    listed = db.execute(
        select(Classroom.id, Classroom.online, Classroom.last_seen_at).order_by(Classroom.id)
    ).all()
    up = [
        c.id
        for c in listed
        if (
            c.id in online
            if online is not None
            else bool(c.online and c.last_seen_at and now - as_utc(c.last_seen_at) <= STALE_AFTER)
        )
    ]
    # Only online classrooms' health documents are read (and decoded): an offline one
    # measures 0 kbps.
    query = select(Classroom.id, Classroom.health).where(Classroom.id.in_(up))
    health: dict[str, dict[str, object]] = {row.id: row.health for row in db.execute(query)}
    for c in listed:
        is_online = c.id in health
        profile = rooms[c.id].profile
        rows[c.id] = ClassroomBandwidth(
            c.id,
            is_online,
            profile.name if profile else None,
            profile.classroom_cap_kbps if profile else None,
            measured_kbps=measured_send_kbps(health[c.id]) if is_online else 0.0,
        )
    for lesson in live_lessons(db, now):
        if lesson.kind not in planner.rules or any(r not in rooms for r in lesson.classroom_ids):
            continue
        sends = planner.sends(candidate_of(lesson))
        if lesson.one_way:  # broadcast only: receivers send nothing back
            sends = {lesson.lead_classroom_id: sends[lesson.lead_classroom_id]}
        for rid, kbps in sends.items():
            rows[rid].planned_kbps += kbps
            rows[rid].lessons.append(lesson.id)
    schools = {s: SchoolBandwidth(s, kbps) for s, kbps in uplinks.items()}
    for rid, row in rows.items():
        school = rooms[rid].school
        schools.setdefault(school, SchoolBandwidth(school, uplinks.get(school, 0)))
        schools[school].classrooms.append(row)
    return [schools[s] for s in sorted(schools)]


def bandwidth_document(view: list[SchoolBandwidth], now: datetime) -> dict[str, Any]:
    """The JSON answer of ``GET /api/v1/bandwidth`` and ``bandwidth --json``."""
    return {"at": now.isoformat(), "schools": [s.document() for s in view]}
