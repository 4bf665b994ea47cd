"""The term timetable: calendar, rules, series, CSV import, iCalendar export and reports."""

from __future__ import annotations

import pathlib
from datetime import UTC, date, datetime, timedelta

import icalendar
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from timetable_fixtures import BAD_CSV, ROOMS, SETUP, TEACHER_ROLES
from typer.testing import CliRunner

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.cli import app
from controller.common.errors import InvalidRequest
from controller.db.models import Classroom, Lesson, RecordingManifest
from controller.db.session import make_engine, migrate, sessions
from controller.lessons.scheduling import schedule_lesson
from controller.timetable.calendar import SchoolCalendar
from controller.timetable.csv_import import parse_timetable_csv
from controller.timetable.ical import lessons_for, to_ical
from controller.timetable.loading import planner_for
from controller.timetable.planner import Candidate, Planner, Room
from controller.timetable.reports import Quotas, report_csv, report_html, term_report
from controller.timetable.setup import apply_setup, bell_periods, expand_term, term_calendar


@pytest.fixture
def db(tmp_path: pathlib.Path, db_url: str) -> sessionmaker[Session]:
    url = db_url
    migrate(url)
    factory = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with factory() as s:
        for cid, school in ROOMS.items():
            add_classroom(s, cid, cid, school, keys.public)
        s.get(Classroom, "village-202").inventory = TEACHER_ROLES[:1] + TEACHER_ROLES[2:]  # type: ignore[union-attr]
        s.commit()
        apply_setup(s, SETUP)
    return factory


def test_calendar_skips_holidays_and_runs_make_up_days() -> None:
    cal = SchoolCalendar(
        date(2026, 3, 2),
        date(2026, 3, 15),
        holidays=frozenset({date(2026, 3, 10)}),
        makeup={date(2026, 3, 14): 1},
    )
    assert cal.dates_for(1) == [date(2026, 3, 3), date(2026, 3, 14)]  # 10th off, Sat as Tue
    assert date(2026, 3, 8) not in cal.teaching_days()  # Sunday
    assert cal.at(date(2026, 3, 3), "08:00").isoformat() == "2026-03-03T08:00:00+08:00"


def _cand(
    ref: str, start_h: float, lead: str = "a", receivers: tuple[str, ...] = ("b",), **kw: object
) -> Candidate:
    t0 = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    return Candidate(
        ref,
        str(kw.get("kind", "synchronous")),
        lead,
        receivers,
        t0 + timedelta(hours=start_h),
        t0 + timedelta(hours=start_h + 0.75),
        teacher=kw.get("teacher"),  # type: ignore[arg-type]
    )


def test_planner_rules_answer_with_reasons() -> None:
    rooms = {
        "a": Room("a", "s1", frozenset({"teacher", "student", "mic"}), 3000, 700),
        "b": Room("b", "s2", frozenset({"teacher", "student", "mic"}), 3000, 700),
        "c": Room("c", "s2", frozenset({"teacher", "mic"}), 3000, 700),
        "d": Room("d", "s1"),
    }
    planner = Planner(rooms, {"s1": 5000, "s2": 10_000})
    first = _cand("lesson 1", 1, teacher="t1")
    assert planner.check(first) == []
    planner.add(first)
    # back to back in the same rooms: fine
    assert planner.check(_cand("next", 1.75, teacher="t1")) == []
    clash = planner.check(_cand("x", 1.5, lead="b", receivers=("a",)))
    assert {p.code for p in clash} == {"conflict"} and "already booked by lesson 1" in clash[
        0
    ].message
    teacher = planner.check(
        _cand("y", 1.5, lead="c", receivers=("d",), kind="master_teacher", teacher="t1")
    )
    assert [p.code for p in teacher] == ["teacher_conflict"]
    many = planner.check(_cand("z", 5, receivers=("b", "c", "d", "a")))
    assert any(p.code == "receivers" and "1–3" in p.message for p in many)
    cap = planner.check(_cand("w", 5, lead="b", receivers=("c",)))
    assert [p.code for p in cap] == ["capability"] and "no student camera" in cap[0].message
    # one-way kinds need no student camera
    assert planner.check(_cand("v", 5, lead="b", receivers=("c",), kind="master_teacher")) == []
    # s1's 5000 kbps uplink carries lesson 1's lead (3000); a second lead from s1 would not fit
    bw = planner.check(_cand("u", 1.2, lead="d", receivers=("c",), kind="master_teacher"))
    assert [p.code for p in bw] == ["bandwidth"] and "5000 kbps uplink" in bw[0].message
    assert "lesson 1" in bw[0].message


def test_series_expand_with_holiday_make_up_day_and_exception(db: sessionmaker[Session]) -> None:
    with db() as s:
        result = expand_term(s, "spring")
        assert result.problems == []
        lessons = s.scalars(select(Lesson).order_by(Lesson.start_at)).all()
        days = [x.start_at.date() for x in lessons]
    # Tuesdays 3, 10 (holiday), 17, 24 (exception), plus Saturday 14 run as Tuesday
    assert [str(d) for d in days] == ["2026-03-03", "2026-03-14", "2026-03-17"]
    assert all(x.subject == "music" and x.series_id and x.pairing_id == "p1" for x in lessons)
    assert lessons[0].start_at.replace(tzinfo=UTC).isoformat() == "2026-03-03T00:50:00+00:00"
    with db() as s:  # running it again adds nothing and finds nothing wrong
        again = expand_term(s, "spring")
        assert again.created == [] and again.problems == []


def test_schedule_lesson_refuses_a_teacher_double_booking(db: sessionmaker[Session]) -> None:
    t = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)
    with db() as s:
        schedule_lesson(
            s, "city-101", ["village-201"], t, t + timedelta(minutes=40), teacher="t-wang"
        )
        with pytest.raises(InvalidRequest, match="teacher 't-wang' already leads"):
            schedule_lesson(
                s,
                "city-102",
                ["village-202"],
                t,
                t + timedelta(minutes=40),
                kind="master_teacher",
                teacher="t-wang",
            )


def test_csv_reports_every_problem_by_row_and_writes_nothing(
    db: sessionmaker[Session], tmp_path: pathlib.Path
) -> None:
    with db() as s:
        cal = term_calendar(s, "spring")
        planner = planner_for(s)
        result = parse_timetable_csv(BAD_CSV, planner, cal, bell_periods(s), {"t-wang", "t-li"})
    lines = [str(p) for p in result.problems]
    assert len(lines) == 4, lines
    assert lines[0].startswith("row 3: date '2026-13-40' is not a date")
    assert lines[1].startswith("row 4: unknown classroom 'nowhere-9'")
    assert lines[2].startswith("row 5: classroom 'village-201' is already booked by row 2")
    assert lines[3].startswith("row 6: not valid UTF-8 (it reads as GBK")
    assert len(result.good) == 2

    csv_file = tmp_path / "term.csv"
    csv_file.write_bytes(BAD_CSV)
    state = tmp_path  # the db fixture lives in tmp_path/c.sqlite3; the CLI uses its own
    runner = CliRunner()
    env = {"CLASSBRIDGE_CONTROLLER_STATE": str(state / "cli")}
    base = ["timetable"]
    out = runner.invoke(app, [*base, "setup", str(_write(tmp_path / "s.toml", SETUP))], env=env)
    assert out.exit_code == 0, out.output
    for cid, school in ROOMS.items():
        runner.invoke(app, ["classroom", "add", cid, "--school", school], env=env)
    out = runner.invoke(
        app, [*base, "import", str(csv_file), "--term", "spring", "--commit"], env=env
    )
    assert out.exit_code == 1 and "nothing written" in out.output and "row 6:" in out.output
    out = runner.invoke(
        app, [*base, "import", str(csv_file), "--term", "spring", "--good-rows"], env=env
    )
    assert out.exit_code == 1 and "2 lessons written" in out.output


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_ical_export_parses_in_a_real_calendar_library(db: sessionmaker[Session]) -> None:
    with db() as s:
        expand_term(s, "spring")
        data = to_ical(lessons_for(s, None, "t-wang", None), "t-wang")
        by_school = lessons_for(s, None, None, "village")
    cal = icalendar.Calendar.from_ical(data)
    events = [c for c in cal.walk("VEVENT")]
    assert len(events) == 3 and len(by_school) == 3
    first = events[0]
    assert str(first["uid"]).endswith("@classbridge")
    assert first.decoded("dtstart") == datetime(2026, 3, 3, 0, 50, tzinfo=UTC)
    assert "music" in str(first["summary"]) and "village-201" in str(first["description"])
    with pytest.raises(InvalidRequest):
        lessons_for(s, "a", "b", None)


def test_report_counts_held_from_what_receivers_recorded(db: sessionmaker[Session]) -> None:
    with db() as s:
        expand_term(s, "spring")
        lessons = s.scalars(select(Lesson).order_by(Lesson.start_at)).all()
        for lesson, share in zip(lessons, (0.95, 0.5), strict=False):
            for room, direction in (("village-201", "recv"), ("city-101", "send")):
                s.add(
                    RecordingManifest(
                        lesson_id=lesson.id,
                        classroom_id=room,
                        manifest={},
                        coverage={
                            "ratio": 1.0,
                            "tracks": [{"direction": direction, "kind": "video", "ratio": share}],
                        },
                        received_at=datetime.now(UTC),
                    )
                )
        s.commit()
        [rep] = term_report(s, date(2026, 3, 1), date(2026, 3, 31), Quotas(synchronous_total=2))
    assert rep.counts["synchronous"] == {"scheduled": 3, "held": 1, "recorded": 2}
    checks = {name: (n, need, ok) for name, n, need, ok in rep.checks}
    assert checks["synchronous held"] == (1, 2, False)
    assert "delivery held" in checks and "master-teacher held" not in checks
    assert not rep.met
    assert "p1,synchronous held,1,2,no" in report_csv([rep])
    page = report_html([rep], "Spring")
    assert "<svg" in page and "1 / 2" in page


def test_a_county_offices_own_csv_imports_as_saved_by_excel(db: sessionmaker[Session]) -> None:
    """Excel's "CSV" on a Chinese Windows PC: GBK, Chinese headers and kind names, dates as
    2026/3/4, periods as 第1节, receivers split with '；'. Every row goes in as written."""
    text = (
        "日期,节次,类型,主讲教室,接收教室,教师,学科,课题\r\n"
        "2026/3/4,第1节,名师课堂,city-101,village-201；village-202,t-wang,音乐,《春晓》\r\n"
        "2026-3-5,2,专递课堂,city-102,village-201,t-li,美术,水彩\r\n"
        "2026/3/6,3,Synchronous,city-101,village-201,t-wang,音乐,合唱\r\n"
    )
    for encoding in ("gbk", "gb18030", "utf-8-sig"):
        with db() as s:
            result = parse_timetable_csv(
                text.encode(encoding),
                planner_for(s),
                term_calendar(s, "spring"),
                bell_periods(s),
                {"t-wang", "t-li"},
            )
        assert result.problems == [], (encoding, [str(p) for p in result.problems])
        got = [c for _, c in result.good]
        assert [c.kind for c in got] == ["master_teacher", "delivery", "synchronous"]
        assert got[0].receivers == ("village-201", "village-202")
        assert got[0].title == "《春晓》" and got[1].subject == "美术"
        assert got[0].start.date() == date(2026, 3, 4)


def test_a_file_of_mixed_encodings_names_its_odd_rows(db: sessionmaker[Session]) -> None:
    """UTF-8 Chinese rows and a GBK row in one file: the GBK row is named, never garbled."""
    data = (
        "日期,节次,类型,主讲教室,接收教室,教师,学科,课题\n"
        "2026-03-04,1,同步课堂,city-101,village-201,t-wang,音乐,春晓\n"
    ).encode() + "2026-03-05,1,同步课堂,city-101,village-201,t-wang,音乐,合唱\n".encode("gbk")
    with db() as s:
        result = parse_timetable_csv(
            data, planner_for(s), term_calendar(s, "spring"), bell_periods(s), {"t-wang"}
        )
    assert [str(p)[:30] for p in result.problems] == ["row 3: not valid UTF-8 (it rea"]
    assert [c.title for _, c in result.good] == ["春晓"]
