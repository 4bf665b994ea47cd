"""A receiving room's assistant teacher (辅导教师): set per room in a lesson or a CSV row,
booked and conflict-checked like the lead teacher, and counted in the teacher reports."""

from __future__ import annotations

import pathlib
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from timetable_fixtures import ROOMS, SETUP

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.common.errors import RulesRefused
from controller.db.models import LessonReceiver
from controller.db.session import make_engine, migrate, sessions
from controller.lessons.scheduling import lesson_document, schedule_lesson, schedule_placed
from controller.timetable.csv_import import parse_timetable_csv
from controller.timetable.loading import insert_lessons, planner_for
from controller.timetable.quota_engine import evaluate_term
from controller.timetable.quota_reports import build_view
from controller.timetable.setup import apply_setup, bell_periods, term_calendar

ASSISTANTS = """
[[teacher]]
id = "t-zhao"
school = "village"

[[teacher]]
id = "t-qian"
school = "village"
"""
T = datetime(2026, 3, 4, 6, 0, tzinfo=UTC)  # 14:00 in Beijing, a Wednesday


@pytest.fixture
def db(tmp_path: pathlib.Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    migrate(url)
    factory = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with factory() as s:
        for cid, school in ROOMS.items():
            add_classroom(s, cid, cid, school, keys.public)
        s.commit()
        apply_setup(s, SETUP + ASSISTANTS)
    return factory


def _lesson(s: Session, start: datetime, lead: str, receivers: list[str], **kw: object) -> str:
    return schedule_lesson(
        s,
        lead,
        receivers,
        start,
        start + timedelta(minutes=40),
        **kw,  # type: ignore[arg-type]
    ).id


def test_an_assistant_is_stored_per_room_and_shown(db: sessionmaker[Session]) -> None:
    with db() as s:
        lesson, _ = schedule_placed(
            s,
            "city-101",
            ["village-201", "village-202"],
            T,
            T + timedelta(minutes=40),
            teacher="t-wang",
            assistants=(("village-201", "t-zhao"), ("village-202", "t-qian")),
        )
        doc = lesson_document(s, lesson)
        assert doc["assistants"] == {"village-201": "t-zhao", "village-202": "t-qian"}
        row = s.get(LessonReceiver, (lesson.id, "village-202"))
        assert row is not None and row.assistant_teacher_id == "t-qian"


def test_an_assistant_is_conflict_checked_like_the_lead(db: sessionmaker[Session]) -> None:
    with db() as s:
        _lesson(s, T, "city-102", ["village-202"], teacher="t-zhao")  # t-zhao leads here
        with pytest.raises(RulesRefused) as refused:
            schedule_placed(
                s,
                "city-101",
                ["village-201"],
                T + timedelta(minutes=10),
                T + timedelta(minutes=50),
                assistants=(("village-201", "t-zhao"),),
            )
        assert [c for c, _ in refused.value.problems] == ["teacher_conflict"]
        assert "assistant teacher 't-zhao' (in 'village-201') is already booked" in str(
            refused.value
        )
        # And the other way: a booked assistant blocks leading.
        later = T + timedelta(hours=2)
        schedule_placed(
            s,
            "city-101",
            ["village-201"],
            later,
            later + timedelta(minutes=40),
            assistants=(("village-201", "t-qian"),),
        )
        with pytest.raises(RulesRefused, match="teacher 't-qian' already leads"):
            _lesson(s, later, "city-102", ["village-202"], teacher="t-qian")
        for assistants, fragment in [
            ((("village-202", "t-zhao"),), "not a receiving room of this lesson"),
            ((("village-201", "t-wang"),), "they already lead this lesson"),
        ]:
            with pytest.raises(RulesRefused, match=fragment):
                schedule_placed(
                    s,
                    "city-101",
                    ["village-201"],
                    T + timedelta(days=1),
                    T + timedelta(days=1, minutes=40),
                    teacher="t-wang",
                    assistants=assistants,
                )


def test_a_csv_names_each_rooms_assistant(db: sessionmaker[Session]) -> None:
    text = (
        "日期,开始,结束,类型,主讲教室,接收教室,教师,辅导教师\n"
        "2026-03-04,14:00,14:40,同步课堂,city-101,village-201,t-wang,t-zhao\n"
        "2026-03-05,14:00,14:40,同步课堂,city-101,village-201；village-202,t-wang,"
        "village-201：t-zhao；village-202：t-qian\n"
        "2026-03-06,14:00,14:40,同步课堂,city-101,village-201；village-202,t-wang,t-zhao\n"
        "2026-03-06,15:00,15:40,同步课堂,city-101,village-201,t-wang,t-nobody\n"
    )
    with db() as s:
        result = parse_timetable_csv(
            text.encode("gbk"),
            planner_for(s),
            term_calendar(s, "spring"),
            bell_periods(s),
            {"t-wang", "t-li", "t-zhao", "t-qian"},
        )
        problems = {p.row: p.message for p in result.problems}
        assert sorted(problems) == [4, 5], problems
        assert "name the room of each assistant teacher" in problems[4]
        assert "unknown teacher 't-nobody'" in problems[5]
        assert [c.assistants for _, c in result.good] == [
            (("village-201", "t-zhao"),),
            (("village-201", "t-zhao"), ("village-202", "t-qian")),
        ]
        [first, _] = insert_lessons(s, [(c, {"term_id": "spring"}) for _, c in result.good], "t")
        row = s.get(LessonReceiver, (first, "village-201"))
        assert row is not None and row.assistant_teacher_id == "t-zhao"


def test_the_teacher_report_counts_assistants(db: sessionmaker[Session]) -> None:
    with db() as s:
        lesson, _ = schedule_placed(
            s,
            "city-101",
            ["village-201"],
            T,
            T + timedelta(minutes=40),
            teacher="t-wang",
            assistants=(("village-201", "t-zhao"),),
        )
        lesson.term_id = "spring"
        s.commit()
        tq = evaluate_term(s, "spring")
    by_teacher = {e.key: e for e in build_view(tq, "teacher")}
    assert by_teacher["t-zhao"].counts["synchronous"]["scheduled"] == 1
    assert by_teacher["t-wang"].counts["synchronous"]["scheduled"] >= 1
    assert date(2026, 3, 4) in {f.day for f in tq.lessons if "t-zhao" in f.teachers}


def test_a_series_names_its_rooms_assistants(db: sessionmaker[Session]) -> None:
    from controller.common.errors import InvalidRequest
    from controller.timetable.setup import expand_term

    series = """
[[series]]
id = "zhao-music"
term = "spring"
kind = "synchronous"
lead = "city-102"
receivers = ["village-202"]
teacher = "t-li"
subject = "art"
weekday = "thursday"
period = 1
assistants = { "village-202" = "t-qian" }
"""
    with db() as s:
        apply_setup(s, series)
        expand_term(s, "spring")
        rows = s.query(LessonReceiver).filter_by(classroom_id="village-202").all()
        assert rows and {r.assistant_teacher_id for r in rows} == {"t-qian"}
        with pytest.raises(InvalidRequest, match="assistants must map receiving rooms"):
            apply_setup(s, series.replace('{ "village-202" = "t-qian" }', '["t-qian"]'))
