"""The timetable query behind ``GET /api/v1/timetable``: lessons in a time range, maybe of
one classroom, teacher, school or pairing, filtered in SQL on indexed columns (a week of a
term loads in milliseconds however long the term)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from controller.common.errors import InvalidRequest
from controller.db.models import Classroom, Lesson, LessonReceiver


def _utc(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _shifted(name: str, moment: datetime | date, days: int = 0) -> datetime:
    """``moment`` (a time, or a date's UTC midnight) plus ``days``, in UTC; InvalidRequest
    naming the query parameter when that leaves the years 1–9999 datetimes can hold."""
    try:
        if isinstance(moment, datetime):
            return (moment + timedelta(days=days)).astimezone(UTC)
        return _utc(moment + timedelta(days=days))
    except OverflowError:
        raise InvalidRequest(
            f"query {name}={moment.isoformat()} is out of range; use a date between "
            "0001-01-02 and 9999-12-30"
        ) from None


def lessons_query(
    db: Session,
    *,
    first: date | None = None,
    last: date | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    classroom: str | None = None,
    teacher: str | None = None,
    school: str | None = None,
    pairing: str | None = None,
) -> Select[Lesson]:
    """Lessons starting on ``first``..``last`` (UTC dates, inclusive) and overlapping
    ``start``..``end`` (aware datetimes), ordered by start. Naming one of classroom,
    teacher or school leaves cancelled lessons out (as the iCalendar export does)."""
    query = select(Lesson)
    if first is not None:
        query = query.where(Lesson.start_at >= _utc(first))
    if last is not None:
        query = query.where(Lesson.start_at < _shifted("to", last, 1))
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequest(f"query {name} must carry a time zone (2026-03-02T00:00+08:00)")
    if start is not None:
        # Lessons are at most a day long: bound start_at too so the index narrows the scan.
        query = query.where(
            Lesson.end_at > _shifted("start", start),
            Lesson.start_at > _shifted("start", start, -1),
        )
    if end is not None:
        query = query.where(Lesson.start_at < _shifted("end", end))
    named = [x for x in (classroom, teacher, school) if x is not None]
    if len(named) > 1:
        raise InvalidRequest("give at most one of classroom, teacher or school")
    if named:
        query = query.where(Lesson.state != "cancelled")
    if teacher is not None:
        query = query.where(Lesson.teacher_id == teacher)
    elif classroom is not None or school is not None:
        rooms = (
            [classroom]
            if classroom is not None
            else list(db.scalars(select(Classroom.id).where(Classroom.school == school)).all())
        )
        received = select(LessonReceiver.lesson_id).where(LessonReceiver.classroom_id.in_(rooms))
        query = query.where(Lesson.lead_classroom_id.in_(rooms) | Lesson.id.in_(received))
    if pairing is not None:
        query = query.where(Lesson.pairing_id == pairing)
    return query.order_by(Lesson.start_at)
