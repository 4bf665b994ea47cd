"""Building a Planner from the database, and writing checked lessons back in bulk."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from controller.db.models import Classroom, Lesson, LessonEvent, LessonReceiver, School
from controller.db.session import as_utc, utcnow
from controller.lessons.states import ACTIVE_STATES
from controller.network.profiles import resolve, stored_profiles
from controller.timetable.kinds import DEFAULT_RULES, KindRule
from controller.timetable.planner import (
    LEAD_KBPS_ESTIMATE,
    RECEIVER_KBPS_ESTIMATE,
    Candidate,
    Planner,
    Room,
)
from protocols.network_profile import NetworkProfile

# Device roles a classroom publishes when it leads, and when it receives two-way.
LEAD_ROLES = ("teacher", "content", "room")
RECEIVER_ROLES = ("student", "room")
VIDEO_KINDS = ("camera", "panel")


class RoomColumns(Protocol):
    """What the rules read of a classroom: a stored row, or just these columns."""

    @property
    def id(self) -> str: ...

    @property
    def school(self) -> str: ...

    @property
    def inventory(self) -> list[dict[str, object]]: ...


def room_of(classroom: RoomColumns, profile: NetworkProfile | None = None) -> Room:
    """Rules' view of a classroom: its school, device roles, send bitrates and profile."""
    inventory = classroom.inventory or []
    if not inventory:
        return Room(classroom.id, classroom.school or classroom.id, profile=profile)
    roles = frozenset(str(d.get("role", "")) for d in inventory)

    def kbps(wanted: tuple[str, ...]) -> int:
        return sum(_num(d.get("bitrate")) for d in inventory if d.get("role") in wanted) // 1000

    def videos(wanted: tuple[str, ...]) -> int:
        return sum(1 for d in inventory if d.get("role") in wanted and d.get("kind") in VIDEO_KINDS)

    return Room(
        classroom.id,
        classroom.school or classroom.id,
        roles,
        kbps(LEAD_ROLES) or LEAD_KBPS_ESTIMATE,
        kbps(RECEIVER_ROLES) or RECEIVER_KBPS_ESTIMATE,
        profile,
        videos(LEAD_ROLES) or 2,
        videos(RECEIVER_ROLES) or 1,
    )


def rooms_and_uplinks(db: Session) -> tuple[dict[str, Room], dict[str, int]]:
    """Every classroom as the rules see it (with its effective network profile), and each
    school's uplink: its profile's, else the set-up's, else the smallest one named by the
    profiles of its classrooms (0: not known)."""
    profiles = stored_profiles(db)
    schools = db.scalars(select(School)).all()
    school_profile = {s.id: s.network_profile for s in schools}
    rooms = {
        c.id: room_of(
            c,
            resolve(
                c.network_profile, school_profile.get(c.school) if c.school else None, profiles
            ),
        )
        # The columns the rules read: a whole row would also decode its health document.
        for c in db.execute(
            select(Classroom.id, Classroom.school, Classroom.inventory, Classroom.network_profile)
        )
    }
    uplinks = {s.id: s.uplink_kbps for s in schools}
    for s in schools:
        own = profiles.get(s.network_profile or "")
        if own is not None and own.uplink_kbps > 0:
            uplinks[s.id] = own.uplink_kbps
    from_rooms: dict[str, int] = {}
    for room in rooms.values():
        if room.profile is not None and room.profile.uplink_kbps > 0:
            known = from_rooms.get(room.school)
            from_rooms[room.school] = min(
                known or room.profile.uplink_kbps, room.profile.uplink_kbps
            )
    for school, kbps in from_rooms.items():
        if uplinks.get(school, 0) <= 0:
            uplinks[school] = kbps
    return rooms, uplinks


def _num(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


def candidate_of(lesson: Lesson) -> Candidate:
    """A stored lesson as the planner sees it."""
    return Candidate(
        ref=f"lesson {lesson.id}",
        kind=lesson.kind,
        lead=lesson.lead_classroom_id,
        receivers=tuple(r.classroom_id for r in lesson.receivers),
        start=as_utc(lesson.start_at),
        end=as_utc(lesson.end_at),
        teacher=lesson.teacher_id,
        subject=lesson.subject,
        rung=lesson.rung,
        assistants=tuple(
            (r.classroom_id, r.assistant_teacher_id)
            for r in lesson.receivers
            if r.assistant_teacher_id
        ),
    )


def planner_for(
    db: Session,
    window: tuple[datetime, datetime] | None = None,
    rules: dict[str, KindRule] | None = None,
    skip: Iterable[str] = (),
) -> Planner:
    """A planner loaded with every classroom, school uplink and active lesson
    (within ``window`` if given; ``skip`` leaves lessons out, e.g. one being moved)."""
    rooms, uplinks = rooms_and_uplinks(db)
    planner = Planner(rooms, uplinks, dict(rules or DEFAULT_RULES))
    query = select(Lesson).where(Lesson.state.in_(ACTIVE_STATES))
    if window is not None:
        query = query.where(
            Lesson.start_at < window[1] + timedelta(days=1),
            Lesson.end_at > window[0] - timedelta(days=1),
        )
    skipped = set(skip)
    for lesson in db.scalars(query).all():
        if lesson.id not in skipped:
            planner.add(candidate_of(lesson))
    return planner


def insert_lessons(
    db: Session,
    lessons: list[tuple[Candidate, dict[str, object]]],
    detail: str,
) -> list[str]:
    """Write checked lessons in bulk (with their receivers and a creation event)."""
    now = utcnow()
    rows, receivers, events, ids = [], [], [], []
    for cand, extra in lessons:
        lesson_id = uuid.uuid4().hex[:12]
        ids.append(lesson_id)
        rows.append(
            {
                "id": lesson_id,
                "kind": cand.kind,
                "title": cand.title,
                "lead_classroom_id": cand.lead,
                # SQLite keeps no zone: store UTC, which as_utc() reads back.
                "start_at": cand.start.astimezone(UTC),
                "end_at": cand.end.astimezone(UTC),
                "state": "scheduled",
                "reports": {},
                "error": "",
                "created_at": now,
                "subject": cand.subject,
                "teacher_id": cand.teacher,
                "one_way": not DEFAULT_RULES[cand.kind].two_way,
                "rung": cand.rung,
                **extra,
            }
        )
        assisting = dict(cand.assistants)
        receivers += [
            {"lesson_id": lesson_id, "classroom_id": r, "assistant_teacher_id": assisting.get(r)}
            for r in cand.receivers
        ]
        events.append(
            {
                "lesson_id": lesson_id,
                "at": now,
                "from_state": "",
                "to_state": "scheduled",
                "detail": f"{detail}: lead {cand.lead}, "
                f"receivers {', '.join(cand.receivers) or 'none'}",
            }
        )
    if rows:
        db.execute(insert(Lesson), rows)
        if receivers:
            db.execute(insert(LessonReceiver), receivers)
        db.execute(insert(LessonEvent), events)
    db.commit()
    return ids
