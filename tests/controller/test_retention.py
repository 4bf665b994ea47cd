"""Retention per lesson kind, with an audit record of every deletion."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from controller.db.models import Deletion, StoredSegment
from controller.db.session import make_engine, migrate, sessions
from controller.keys import ServerKeys
from controller.lessons import schedule_lesson
from controller.recordings import record_segment
from controller.registry import add_classroom
from controller.retention import RetentionPolicy, run_retention
from controller.storage.local import LocalStorage


def test_old_lessons_are_deleted_by_kind_and_audited(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    db = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    storage = LocalStorage(tmp_path / "storage")
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    with db() as s:
        for cid in ("a", "b"):
            add_classroom(s, cid, cid, "", keys.public)
        old = schedule_lesson(s, "a", ["b"], t0, t0 + timedelta(minutes=40))
        kept = schedule_lesson(
            s, "a", ["b"], t0 + timedelta(days=1), t0 + timedelta(days=1, hours=1)
        )
        kept.kind = "master_teacher"
        s.commit()
        for lesson in (old, kept):
            key = f"lessons/{lesson.id}/a/teacher/teacher-00001.mp4"
            path = storage.root / key
            path.parent.mkdir(parents=True)
            path.write_bytes(b"12345")
            record_segment(s, lesson.id, "a", "teacher", "teacher-00001.mp4", key, "f" * 64, 5)
    policy = RetentionPolicy(days={"synchronous": 30, "master_teacher": 3 * 365})
    cleared = run_retention(db, storage, policy, now=t0 + timedelta(days=60))
    assert cleared == [old.id]
    assert not (storage.root / f"lessons/{old.id}/a/teacher/teacher-00001.mp4").exists()
    assert (storage.root / f"lessons/{kept.id}/a/teacher/teacher-00001.mp4").exists()
    with db() as s:
        [audit] = s.scalars(select(Deletion)).all()
        assert audit.lesson_id == old.id and audit.bytes == 5 and audit.sha256 == "f" * 64
        assert "30 days" in audit.reason and audit.actor == "retention-policy"
        assert [r.lesson_id for r in s.scalars(select(StoredSegment))] == [kept.id]
    assert run_retention(db, storage, policy, now=t0 + timedelta(days=60)) == []


def test_retention_option_refuses_bad_values_clearly(tmp_path: pathlib.Path) -> None:
    from typer.testing import CliRunner

    from controller.cli import app

    runner = CliRunner()
    for value, fragment in [("synchronous", "write KIND=DAYS"), ("research=-3", "whole number")]:
        result = runner.invoke(app, ["serve", "--state-dir", str(tmp_path), "--retention", value])
        assert result.exit_code == 2, result.output
        assert fragment in result.output
