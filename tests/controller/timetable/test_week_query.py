"""The week query behind GET /api/v1/timetable and the check/move routes' logic: a week of
a 10,000-lesson term loads fast, filters by classroom, school, teacher and pairing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from controller.common.errors import InvalidRequest
from controller.db.models import Classroom, Lesson, LessonReceiver
from controller.db.session import make_engine, migrate, sessions
from controller.timetable.check_api import check_candidate
from controller.timetable.week import lessons_query

TERM_START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday
ROOMS = [f"room-{n}" for n in range(40)]


@pytest.fixture(scope="module")
def db(module_db_url: str) -> sessionmaker[Session]:
    """A term of 10,000 lessons over 20 weeks, between 40 classrooms of 4 schools."""
    url = module_db_url
    migrate(url)
    made = sessions(make_engine(url))
    with made() as s:
        s.execute(
            insert(Classroom),
            [
                {"id": r, "name": r, "school": f"school-{n % 4}", "inventory": [], "health": {}}
                for n, r in enumerate(ROOMS)
            ],
        )
        lessons, receivers = [], []
        for n in range(10_000):
            day, slot = divmod(n, 72)  # 72 lessons a day, 20 weeks of 7 days
            start = TERM_START + timedelta(days=day, hours=8 + (slot % 9))
            lead = ROOMS[slot % 40]
            lessons.append(
                {
                    "id": f"l{n:05d}",
                    "kind": "synchronous",
                    "title": "",
                    "lead_classroom_id": lead,
                    "start_at": start,
                    "end_at": start + timedelta(minutes=40),
                    "state": "scheduled",
                    "reports": {},
                    "error": "",
                    "created_at": TERM_START,
                    "subject": "math",
                    "teacher_id": f"t{slot % 30}",
                    "pairing_id": f"p{slot % 10}",
                    "one_way": False,
                }
            )
            receivers.append({"lesson_id": f"l{n:05d}", "classroom_id": ROOMS[(slot + 1) % 40]})
        s.execute(insert(Lesson), lessons)
        s.execute(insert(LessonReceiver), receivers)
        s.commit()
    return made


def _week(
    s: Session,
    classroom: str | None = None,
    teacher: str | None = None,
    school: str | None = None,
    pairing: str | None = None,
) -> list[Lesson]:
    start = TERM_START + timedelta(weeks=10)
    query = lessons_query(
        s,
        start=start,
        end=start + timedelta(weeks=1),
        classroom=classroom,
        teacher=teacher,
        school=school,
        pairing=pairing,
    )
    return list(s.scalars(query).all())


def test_a_week_of_a_10000_lesson_term_is_exactly_that_week(db: sessionmaker[Session]) -> None:
    # How fast it loads is measured by scripts/bench-console (page_ms_p50), not here.
    with db() as s:
        lessons = _week(s)
        summaries = [[r.classroom_id for r in x.receivers] for x in lessons]
    assert len(lessons) == 7 * 72 and len(summaries) == len(lessons)


def test_scopes_filter_in_sql(db: sessionmaker[Session]) -> None:
    with db() as s:
        room = _week(s, classroom="room-5")
        assert room and all(
            x.lead_classroom_id == "room-5" or "room-5" in [r.classroom_id for r in x.receivers]
            for x in room
        )
        school = _week(s, school="school-1")
        assert len(school) > len(room)
        assert all(x.teacher_id == "t3" for x in _week(s, teacher="t3"))
        assert all(x.pairing_id == "p2" for x in _week(s, pairing="p2"))
        with pytest.raises(InvalidRequest, match="at most one"):
            _week(s, classroom="room-5", teacher="t3")


def test_check_reports_the_conflict_without_saving(db: sessionmaker[Session]) -> None:
    start = TERM_START + timedelta(weeks=10, hours=8)
    body = {
        "lead": "room-0",
        "receivers": ["room-39"],
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=40)).isoformat(),
    }
    with db() as s:
        before = s.query(Lesson).count()
        answer = check_candidate(s, body)
        assert answer["ok"] is False
        problems = answer["problems"]
        assert isinstance(problems, list)
        assert any(p["code"] == "conflict" and "room-0" in p["message"] for p in problems)
        booked = s.scalars(lessons_query(s, start=start, end=start + timedelta(minutes=1))).all()
        clear = check_candidate(s, {**body, "lesson": booked[0].id})
        assert clear["ok"] is True, clear
        assert s.query(Lesson).count() == before
