"""Migration 0021 on SQLite and PostgreSQL: every recording published before review
existed becomes an approved library item with its lesson's metadata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.config import Config
from sqlalchemy import select

from controller.db.models import Classroom, LibraryItem, PublishedRecording
from controller.db.session import MIGRATIONS, make_engine, migrate, sessions
from controller.db.urls import is_postgresql
from controller.lessons.scheduling import schedule_lesson

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def _alembic(url: str, action: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if not is_postgresql(url):
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        getattr(command, action)(cfg, revision)
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)
            conn.commit()
    finally:
        engine.dispose()


def test_published_recordings_become_approved_items(db_url: str) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    db = sessions(engine)
    try:
        with db() as s:
            s.add(Classroom(id="a", name="A", school="City School"))
            s.add(Classroom(id="b", name="B", school="Village School"))
            s.commit()
            titled = schedule_lesson(
                s,
                "a",
                ["b"],
                T0,
                T0 + timedelta(minutes=40),
                "Fractions",
                "synchronous",
                "t-wang",
                "math",
            )
            bare = schedule_lesson(s, "b", ["a"], T0 + timedelta(hours=2), T0 + timedelta(hours=3))
            ids = (titled.id, bare.id)
            for lid, room in ((ids[0], "a"), (ids[1], "b")):
                s.add(
                    PublishedRecording(
                        lesson_id=lid,
                        classroom_id=room,
                        track="teacher",
                        published_by="scheduler",
                        published_at=T0,
                    )
                )
            s.commit()
        # Back to 0020 (no library) and up again: the published rows are migrated.
        _alembic(db_url, "downgrade", "0020")
        _alembic(db_url, "upgrade", "head")
        with db() as s:
            rows = {i.lesson_id: i for i in s.scalars(select(LibraryItem))}
        assert set(rows) == set(ids)
        first, second = rows[ids[0]], rows[ids[1]]
        assert first.status == "approved" and first.kind == "recording"
        assert (first.title, first.subject, first.teacher, first.school) == (
            "Fractions",
            "math",
            "t-wang",
            "City School",
        )
        assert first.reviewed_by == "scheduler" and "migration 0021" in first.review_reason
        assert second.title == f"{ids[1]} teacher" and second.school == "Village School"
    finally:
        engine.dispose()
