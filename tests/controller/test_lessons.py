"""Scheduling checks (the upload API is in test_uploads_api.py)."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.common.errors import InvalidRequest, NotFound
from controller.db.session import make_engine, migrate, sessions
from controller.lessons.scheduling import schedule_lesson

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: pathlib.Path, db_url: str) -> sessionmaker[Session]:
    """A migrated database (SQLite, then PostgreSQL) with three classrooms."""
    url = db_url
    migrate(url)
    factory = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with factory() as s:
        for cid in ("a", "b", "c"):
            add_classroom(s, cid, cid, "", keys.public)
    return factory


def test_schedule_checks(db: sessionmaker[Session]) -> None:
    with db() as s:
        lesson = schedule_lesson(s, "a", ["b"], T0, T0 + timedelta(minutes=40))
        assert lesson.classroom_ids == ["a", "b"] and lesson.state == "scheduled"
        cases = [
            (("a", ["b"], T0 + timedelta(minutes=40), T0), InvalidRequest, "end after it starts"),
            (("a", ["a"], T0, T0 + timedelta(hours=1)), InvalidRequest, "both lead and receive"),
            (
                ("a", [], T0, T0 + timedelta(hours=1)),
                InvalidRequest,
                "takes 1–3 receiving classrooms; this one has 0",
            ),
            (("a", ["zz"], T0, T0 + timedelta(hours=1)), NotFound, "'zz' does not exist"),
            (
                ("c", ["b"], T0 + timedelta(minutes=30), T0 + timedelta(hours=1)),
                InvalidRequest,
                "'b' is already booked by lesson " + lesson.id,
            ),
            (
                ("a", ["b"], T0.replace(tzinfo=None), T0.replace(tzinfo=None) + timedelta(hours=1)),
                InvalidRequest,
                "time zone",
            ),
        ]
        for args, error, fragment in cases:
            with pytest.raises(error) as info:
                schedule_lesson(s, *args)  # type: ignore[arg-type]
            assert fragment in str(info.value)
        # back to back in the same room is fine
        schedule_lesson(s, "c", ["b"], T0 + timedelta(minutes=40), T0 + timedelta(minutes=80))
