"""iCalendar (RFC 5545) export of the timetable, per classroom, teacher or school."""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.auth.scope import COUNTY, Scope
from controller.common.errors import InvalidRequest
from controller.db.models import Classroom, Lesson, LessonReceiver
from controller.db.session import as_utc
from controller.timetable.kinds import DEFAULT_RULES


def lessons_for(
    db: Session,
    classroom: str | None,
    teacher: str | None,
    school: str | None,
    scope: Scope = COUNTY,
) -> list[Lesson]:
    """Lessons a classroom takes part in, a teacher leads, or a school's classrooms take;
    of those, the ones in the caller's ``scope``."""
    if sum(x is not None for x in (classroom, teacher, school)) != 1:
        raise InvalidRequest("give exactly one of classroom, teacher or school")
    query = select(Lesson).where(Lesson.state != "cancelled")
    if teacher is not None:
        query = query.where(Lesson.teacher_id == teacher)
    else:
        rooms = (
            [classroom]
            if classroom is not None
            else list(db.scalars(select(Classroom.id).where(Classroom.school == school)).all())
        )
        received = select(LessonReceiver.lesson_id).where(LessonReceiver.classroom_id.in_(rooms))
        query = query.where(Lesson.lead_classroom_id.in_(rooms) | Lesson.id.in_(received))
    return list(db.scalars(scope.lessons(db, query).order_by(Lesson.start_at)).all())


def to_ical(lessons: list[Lesson], name: str) -> bytes:
    """A VCALENDAR with one VEVENT per lesson (UTC times, stable UIDs)."""
    cal = Calendar()
    cal.add("prodid", "-//classbridge//timetable//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    stamp = datetime.now(UTC)
    for lesson in lessons:
        event = Event()
        event.add("uid", f"{lesson.id}@classbridge")
        event.add("dtstamp", stamp)
        event.add("dtstart", as_utc(lesson.start_at))
        event.add("dtend", as_utc(lesson.end_at))
        rule = DEFAULT_RULES.get(lesson.kind)
        label = rule.label if rule else lesson.kind
        subject = f"{lesson.subject} · " if lesson.subject else ""
        event.add("summary", f"{subject}{lesson.title or label}")
        event.add("location", lesson.lead_classroom_id)
        receivers = ", ".join(r.classroom_id for r in lesson.receivers) or "none"
        teacher = f"\nteacher: {lesson.teacher_id}" if lesson.teacher_id else ""
        event.add(
            "description",
            f"{label}\nlead: {lesson.lead_classroom_id}\nreceivers: {receivers}{teacher}",
        )
        event.add("status", "CANCELLED" if lesson.state == "cancelled" else "CONFIRMED")
        cal.add_component(event)
    data: bytes = cal.to_ical()
    return data
