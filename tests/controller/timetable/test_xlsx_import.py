"""A timetable workbook (.xlsx) as a county office keeps it: read like the CSV, by row."""

from __future__ import annotations

import io
import pathlib
from datetime import date, datetime, time

import pytest
from openpyxl import Workbook
from sqlalchemy.orm import Session, sessionmaker
from timetable_fixtures import ROOMS, SETUP

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.db.session import make_engine, migrate, sessions
from controller.timetable.csv_import import MAX_ROWS, parse_timetable_csv
from controller.timetable.loading import planner_for
from controller.timetable.setup import apply_setup, bell_periods, term_calendar

HEADER = ["日期", "节次", "开始", "结束", "类型", "主讲教室", "接收教室", "教师", "学科", "课题"]


@pytest.fixture
def db(tmp_path: pathlib.Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    migrate(url)
    factory = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with factory() as s:
        for cid, school in ROOMS.items():
            add_classroom(s, cid, cid, school, keys.public)
        s.commit()
        apply_setup(s, SETUP)
    return factory


def _workbook(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in [HEADER, *rows]:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _parse(db: sessionmaker[Session], data: bytes) -> object:
    with db() as s:
        return parse_timetable_csv(
            data, planner_for(s), term_calendar(s, "spring"), bell_periods(s), {"t-wang", "t-li"}
        )


def test_a_workbook_imports_with_excels_own_dates_numbers_and_times(
    db: sessionmaker[Session],
) -> None:
    data = _workbook(
        [
            # Excel's own cells: a date, a whole number stored as a float, Chinese names.
            [
                datetime(2026, 3, 4),
                1.0,
                None,
                None,
                "名师课堂",
                "city-101",
                "village-201；village-202",
                "t-wang",
                "音乐",
                "《春晓》",
            ],
            [
                date(2026, 3, 5),
                "第2节",
                None,
                None,
                "专递课堂",
                "city-102",
                "village-201",
                "t-li",
                "美术",
                "水彩",
            ],
            [],  # an empty row is skipped, as in a CSV
            [
                date(2026, 3, 6),
                None,
                time(10, 0),
                time(10, 40),
                "同步课堂",
                "city-101",
                "village-201",
                "t-wang",
                "音乐",
                "合唱",
            ],
        ]
    )
    assert data.startswith(b"PK")
    result = _parse(db, data)
    assert result.problems == [], [str(p) for p in result.problems]  # type: ignore[attr-defined]
    got = [c for _, c in result.good]  # type: ignore[attr-defined]
    assert [c.kind for c in got] == ["master_teacher", "delivery", "synchronous"]
    assert got[0].receivers == ("village-201", "village-202")
    assert got[0].start.date() == date(2026, 3, 4) and got[1].subject == "美术"
    assert got[2].start.strftime("%H:%M") == "10:00" and got[2].end.strftime("%H:%M") == "10:40"


def test_a_workbooks_bad_rows_are_named_by_the_row_excel_shows(
    db: sessionmaker[Session],
) -> None:
    data = _workbook(
        [
            [
                date(2026, 3, 4),
                1,
                None,
                None,
                "同步课堂",
                "city-101",
                "village-201",
                "t-wang",
                "音乐",
                "好",
            ],
            [
                date(2026, 3, 4),
                2,
                None,
                None,
                "同步课堂",
                "city-999",
                "village-201",
                "t-wang",
                "音乐",
                "无此教室",
            ],
        ]
    )
    result = _parse(db, data)
    rows = [p.row for p in result.problems]  # type: ignore[attr-defined]
    assert rows == [3], [str(p) for p in result.problems]  # type: ignore[attr-defined]
    assert "city-999" in str(result.problems[0])  # type: ignore[attr-defined]
    assert len(result.good) == 1  # type: ignore[attr-defined]


def test_a_broken_workbook_and_an_oversized_one_are_refused_with_what_to_do(
    db: sessionmaker[Session],
) -> None:
    broken = _workbook([])[:300]  # a ZIP cut short
    [problem] = _parse(db, broken).problems  # type: ignore[attr-defined]
    assert problem.code == "workbook" and "save it again" in problem.message
    many = _workbook(
        [[date(2026, 3, 4), 1, None, None, "同步课堂", "city-101", "village-201", "t-wang"]]
        * (MAX_ROWS + 3)
    )
    [problem] = _parse(db, many).problems  # type: ignore[attr-defined]
    assert problem.code == "too_many_rows" and problem.row == MAX_ROWS + 2
