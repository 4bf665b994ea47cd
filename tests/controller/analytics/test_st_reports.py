"""S-T figures in the term reports: by teacher and by school, from the timelines the
agents sent, with a CSV section; a lesson without timelines is not analysed."""

from __future__ import annotations

import pathlib
from datetime import date

import pytest
from quota_seed import lesson
from sqlalchemy.orm import Session, sessionmaker
from timetable_fixtures import ROOMS, SETUP

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.analytics.store import store_talk
from controller.db.models import Lesson
from controller.db.session import as_utc, make_engine, migrate, sessions
from controller.timetable.quota_engine import evaluate_term
from controller.timetable.quota_reports import build_view, view_csv
from controller.timetable.setup import apply_setup
from protocols.messages import TalkTimeline


@pytest.fixture
def db(tmp_path: pathlib.Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 's.sqlite3'}"
    migrate(url)
    factory = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with factory() as s:
        for cid, school in ROOMS.items():
            add_classroom(s, cid, cid, school, keys.public)
        apply_setup(s, SETUP)
    return factory


def _talk(s: Session, lesson_id: str, lead: str, receiver: str) -> None:
    row = s.get(Lesson, lesson_id)
    assert row is not None
    start = as_utc(row.start_at).timestamp()
    store_talk(s, row, "city-101", TalkTimeline(start=start, codes=lead))
    store_talk(s, row, "village-201", TalkTimeline(start=start, codes=receiver))
    s.commit()


def test_the_teacher_and_school_reports_sum_up_the_st_figures(
    db: sessionmaker[Session],
) -> None:
    with db() as s:
        lecture = lesson(s, date(2026, 3, 4))
        dialogue = lesson(s, date(2026, 3, 5))
        lesson(s, date(2026, 3, 6))  # no agent sent a timeline: not analysed
        _talk(s, lecture, "T" * 2400, "." * 2400)
        _talk(s, dialogue, ("T" * 30 + "." * 30) * 40, ("." * 30 + "S" * 30) * 40)
        tq = evaluate_term(s, "spring")
    [wang] = [e for e in build_view(tq, "teacher") if e.key == "t-wang"]
    doc = wang.to_json()["st"]
    assert doc["analysed"] == 2
    assert doc["rt_mean"] == 0.75  # (1 + 0.5) / 2
    assert doc["ch_mean"] == pytest.approx((0 + 79 / 80) / 2, abs=0.001)
    assert doc["types"] == {"dialogue": 1, "lecture": 1}
    assert (doc["teacher_talk_s"], doc["student_talk_s"]) == (2400 + 1200, 1200)
    assert doc["student_share"] == 0.25
    for school in ("city", "village"):
        [entry] = [e for e in build_view(tq, "school") if e.key == school]
        assert entry.st.lessons == 2 and entry.st.types == {"dialogue": 1, "lecture": 1}
    table = view_csv(build_view(tq, "school"), "school")
    assert "Rt均值 Rt mean" in table and "对话型 dialogue" in table
    assert "city,city,2,0.75," in table.replace("\r\n", "\n"), table
