"""Switching a school's, or the county's, lessons to online only, and back.

When a school closes at short notice (snow, an epidemic), the children stay home and the
teachers go on teaching from the recording classrooms. One action, by a scheduler or an
admin, holds every lesson that a classroom of the school (or any school: the county)
takes part in, from now until a time (a day, say) or until switched back:

- **broadcast one way**: the receiving classrooms are empty, so nothing is sent back;
- **published** for students at home, through the public watch page, when the controller
  has an HLS origin (``publisher``); without one the switch says so, and the lessons are
  still held one way.

The switch keeps what it changed in each lesson, so switching back restores exactly
that: a lesson already broadcast-only or published before it stays as it was. Lessons
added to the timetable while a switch holds are switched as they are prepared
(:func:`apply_to_lesson`). Every step is a lesson event; the route or CLI call is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from controller.common.errors import InvalidRequest, NotFound, WrongState
from controller.db.models import Classroom, EmergencySwitch, Lesson, LessonReceiver
from controller.db.session import as_utc, utcnow
from controller.lessons.scheduling import log_event

# Lessons a switch holds: those not over yet.
OPEN_STATES = ("scheduled", "preparing", "live")


class Publisher(Protocol):
    """What the switch needs from publishing (``controller.publishing``)."""

    def publish(self, db: Session, lesson: Lesson, by: str) -> None:
        """Publish the lesson for viewers at home (raises ``InvalidRequest`` if it cannot)."""

    def unpublish(self, db: Session, lesson: Lesson, by: str) -> bool:
        """Stop publishing it; False when it was not published."""

    def is_published(self, db: Session, lesson_id: str) -> bool:
        """Whether the lesson is published now."""

    def links(self, lesson: Lesson, until: datetime | None) -> dict[str, str]:
        """Watch links for students at home: ``public_url`` (signed) and ``intranet_url``."""


def _school_exists(db: Session, school: str) -> bool:
    return db.scalar(select(Classroom.id).where(Classroom.school == school).limit(1)) is not None


def _covers(switch: EmergencySwitch, lesson: Lesson, now: datetime) -> bool:
    """Whether the switch (active at ``now``) holds ``lesson`` by its times."""
    if switch.ended_at is not None:
        return False
    if switch.until is not None and as_utc(lesson.start_at) >= as_utc(switch.until):
        return False
    return as_utc(lesson.end_at) > now


def _lessons_of(db: Session, school: str | None) -> list[Lesson]:
    """The open lessons a classroom of ``school`` (None: any) takes part in."""
    query = select(Lesson).where(Lesson.state.in_(OPEN_STATES))
    if school is not None:
        rooms = select(Classroom.id).where(Classroom.school == school)
        received = select(LessonReceiver.lesson_id).where(LessonReceiver.classroom_id.in_(rooms))
        query = query.where(or_(Lesson.lead_classroom_id.in_(rooms), Lesson.id.in_(received)))
    return list(db.scalars(query.order_by(Lesson.start_at)))


def active_switches(db: Session, now: datetime | None = None) -> list[EmergencySwitch]:
    """Switches holding now (not ended, not past their time)."""
    at = now or utcnow()
    rows = db.scalars(select(EmergencySwitch).where(EmergencySwitch.ended_at.is_(None)))
    return [s for s in rows if s.until is None or as_utc(s.until) > at]


def _hold(
    db: Session, switch: EmergencySwitch, lesson: Lesson, publisher: Publisher | None
) -> dict[str, object]:
    """Make one lesson online only; what it was before, for switching back."""
    entry: dict[str, object] = {
        "lesson": lesson.id,
        "one_way_before": lesson.one_way,
        "published_before": bool(publisher and publisher.is_published(db, lesson.id)),
        "published": False,
        "problem": "",
    }
    by = f"emergency switch {switch.id} ({switch.set_by})"
    if not lesson.one_way:
        lesson.one_way = True
        db.commit()
    if publisher is None:
        entry["problem"] = "no HLS origin is configured: held one way, not published"
    else:
        try:
            publisher.publish(db, lesson, by)
            entry["published"] = True
            entry.update(publisher.links(lesson, switch.until))
        except (InvalidRequest, WrongState) as err:
            entry["problem"] = f"not published: {err}"
    log_event(
        db,
        lesson.id,
        f"{by}: online only (broadcast one way"
        + (", published for viewers at home)" if entry["published"] else f"; {entry['problem']})"),
    )
    return entry


def switch_on(
    db: Session,
    *,
    school: str | None,
    until: datetime | None,
    reason: str,
    by: str,
    publisher: Publisher | None,
    now: datetime | None = None,
) -> EmergencySwitch:
    """Hold every open lesson of ``school`` (None: the county) online only until ``until``
    (None: until switched back). Refused while another switch already holds that scope."""
    at = now or utcnow()
    if school is not None and not _school_exists(db, school):
        raise NotFound(f"no classroom belongs to school {school!r}; check its name in the console")
    if until is not None and as_utc(until) <= at:
        raise InvalidRequest(f"'until' {until.isoformat()} is not in the future")
    if not reason.strip():
        raise InvalidRequest("give the reason (it goes in the lessons' events and the audit log)")
    for other in active_switches(db, at):
        if other.school is None or school is None or other.school == school:  # they overlap
            where = "the county" if other.school is None else f"school {other.school!r}"
            raise WrongState(
                f"emergency switch {other.id} already holds {where} online only "
                f"(set by {other.set_by}); switch it back first"
            )
    switch = EmergencySwitch(
        school=school,
        starts_at=at,
        until=until,
        reason=reason.strip()[:500],
        set_by=by[:120],
        set_at=at,
        lessons=[],
    )
    db.add(switch)
    db.commit()
    held = [
        _hold(db, switch, lesson, publisher)
        for lesson in _lessons_of(db, school)
        if _covers(switch, lesson, at)
    ]
    switch.lessons = held
    db.commit()
    return switch


def apply_to_lesson(
    db: Session, lesson: Lesson, publisher: Publisher | None, now: datetime | None = None
) -> EmergencySwitch | None:
    """A lesson being prepared while a switch holds its school: switch it too (once)."""
    at = now or utcnow()
    for switch in active_switches(db, at):
        if any(e.get("lesson") == lesson.id for e in switch.lessons):
            continue
        if not _covers(switch, lesson, at):
            continue
        if switch.school is not None and lesson not in _lessons_of(db, switch.school):
            continue
        entry = _hold(db, switch, lesson, publisher)
        switch.lessons = [*switch.lessons, entry]
        db.commit()
        return switch
    return None


def switch_off(
    db: Session, switch_id: int, by: str, publisher: Publisher | None
) -> EmergencySwitch:
    """Switch back: each lesson not over is restored to what it was before the switch."""
    switch = db.get(EmergencySwitch, switch_id)
    if switch is None:
        raise NotFound(f"emergency switch {switch_id} does not exist; list them with GET")
    if switch.ended_at is not None:
        raise WrongState(
            f"emergency switch {switch_id} was already switched back by {switch.ended_by}"
        )
    label = f"emergency switch {switch.id} switched back by {by}"
    for entry in switch.lessons:
        lesson = db.get(Lesson, str(entry.get("lesson")))
        if lesson is None or lesson.state not in OPEN_STATES:
            continue
        lesson.one_way = bool(entry.get("one_way_before"))
        db.commit()
        if publisher is not None and entry.get("published") and not entry.get("published_before"):
            publisher.unpublish(db, lesson, label)
        log_event(db, lesson.id, f"{label}: back to {'one way' if lesson.one_way else 'two-way'}")
    switch.ended_by = by[:120]
    switch.ended_at = utcnow()
    db.commit()
    return switch


def switch_document(switch: EmergencySwitch, now: datetime | None = None) -> dict[str, Any]:
    """The JSON view of a switch."""
    at = now or utcnow()
    active = switch.ended_at is None and (switch.until is None or as_utc(switch.until) > at)
    return {
        "id": switch.id,
        "school": switch.school,
        "scope": "county" if switch.school is None else "school",
        "starts_at": as_utc(switch.starts_at).isoformat(),
        "until": as_utc(switch.until).isoformat() if switch.until else None,
        "reason": switch.reason,
        "set_by": switch.set_by,
        "ended_by": switch.ended_by,
        "ended_at": as_utc(switch.ended_at).isoformat() if switch.ended_at else None,
        "active": active,
        "lessons": switch.lessons,
    }


PublisherFactory = Callable[[], Publisher | None]
