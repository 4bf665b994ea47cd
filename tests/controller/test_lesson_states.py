"""Lesson transitions: only the moves the state machine allows, with one set of states."""

from __future__ import annotations

import itertools
import pathlib
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.common.errors import WrongState
from controller.db.models import Classroom, Lesson
from controller.db.session import make_engine, migrate, sessions, utcnow
from controller.lessons.scheduling import schedule_lesson, transition
from controller.lessons.states import ACTIVE_STATES, ALLOWED, LessonState, allowed

ORDINARY = ["scheduled", "preparing", "live", "ending", "recorded", "uploaded"]


@pytest.fixture
def db(tmp_path: pathlib.Path, db_url: str) -> sessionmaker[Session]:
    url = db_url
    migrate(url)
    factory = sessions(make_engine(url))
    with factory() as s:
        for cid in ("a", "b"):
            s.add(Classroom(id=cid, name=cid, school="", inventory=[], health={}))
        s.commit()
    return factory


def test_the_ordinary_life_and_its_side_roads_are_allowed_and_nothing_else() -> None:
    for before, after in itertools.pairwise(ORDINARY):
        assert allowed(before, after), (before, after)
    assert allowed("scheduled", "cancelled") and allowed("scheduled", "failed")
    assert allowed("scheduled", "recorded") and allowed("failed", "recorded")
    for refused in [
        ("uploaded", "live"),
        ("cancelled", "scheduled"),
        ("live", "preparing"),
        ("live", "cancelled"),
        ("recorded", "live"),
        ("scheduled", "live"),
        ("live", "nonsense"),
        ("nonsense", "live"),
    ]:
        assert not allowed(*refused), refused
    assert set(ALLOWED) == set(LessonState)
    assert ALLOWED[LessonState.UPLOADED] == ALLOWED[LessonState.CANCELLED] == frozenset()
    assert "scheduled" in ACTIVE_STATES and "uploaded" not in ACTIVE_STATES


def test_a_move_the_machine_does_not_allow_is_refused_and_nothing_is_written(
    db: sessionmaker[Session],
) -> None:
    with db() as s:
        start = utcnow() + timedelta(hours=1)
        lesson = schedule_lesson(s, "a", ["b"], start, start + timedelta(minutes=40))
        with pytest.raises(WrongState, match=r"is scheduled: it cannot become live"):
            transition(s, lesson, "live", "skipping preparation")
        s.rollback()
        assert s.get(Lesson, lesson.id).state == "scheduled"  # type: ignore[union-attr]
        for step in ORDINARY[1:]:
            transition(s, lesson, step)
        with pytest.raises(WrongState, match="is uploaded"):
            transition(s, lesson, "cancelled")


def test_lessons_and_the_timetable_import_each_other_in_no_cycle() -> None:
    """Either module imports first, alone, in a fresh interpreter."""
    for first in ("controller.lessons.scheduling", "controller.timetable.loading"):
        subprocess.run([sys.executable, "-c", f"import {first}"], check=True, timeout=60)
