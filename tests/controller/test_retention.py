"""Retention per lesson kind, with an audit record of every deletion."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.db.models import Deletion, StoredSegment
from controller.db.session import make_engine, migrate, sessions
from controller.lessons.scheduling import schedule_lesson
from controller.recordings.intake import record_segment
from controller.recordings.retention import RetentionPolicy, run_retention
from controller.storage.local import LocalStorage


def _county(tmp_path: pathlib.Path) -> tuple[sessionmaker[Session], LocalStorage]:
    """A migrated database with classrooms a and b, and local storage."""
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    db = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with db() as s:
        for cid in ("a", "b"):
            add_classroom(s, cid, cid, "", keys.public)
    return db, LocalStorage(tmp_path / "storage")


def test_old_lessons_are_deleted_by_kind_and_audited(tmp_path: pathlib.Path) -> None:
    db, storage = _county(tmp_path)
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    with db() as s:
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

    from controller.app.cli import app

    runner = CliRunner()
    for value, fragment in [("synchronous", "write KIND=DAYS"), ("research=-3", "whole number")]:
        result = runner.invoke(app, ["serve", "--state-dir", str(tmp_path), "--retention", value])
        assert result.exit_code == 2, result.output
        assert fragment in result.output


async def test_retention_leaves_no_manifest_staged_part_or_half_file(
    tmp_path: pathlib.Path,
) -> None:
    """Everything of a cleared lesson goes: catalogued segments and recordings, manifests,
    a half-assembled file, an open upload's staged parts; abandoned staging is swept."""
    import os
    from collections.abc import AsyncIterator

    from controller.db.models import RecordingManifest, UploadSession
    from controller.db.session import utcnow

    db, storage = _county(tmp_path)
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    with db() as s:
        lesson = schedule_lesson(s, "a", ["b"], t0, t0 + timedelta(minutes=40))
    base = storage.root / "lessons" / lesson.id
    files = {
        "a/teacher/teacher-00001.mp4": b"segment",
        "a/manifest.json": b"{}",
        "a/teacher.mp4": b"stitched",
        "b/manifest.json": b"{}",
        "a/teacher/teacher-00002.mp4.0123abcd.part": b"half assembled",
    }
    for rel, data in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    with db() as s:
        record_segment(
            s,
            lesson.id,
            "a",
            "teacher",
            "teacher-00001.mp4",
            f"lessons/{lesson.id}/a/teacher/teacher-00001.mp4",
            "f" * 64,
            7,
        )
        s.add(
            RecordingManifest(
                lesson_id=lesson.id,
                classroom_id="a",
                manifest={},
                coverage={},
                received_at=utcnow(),
            )
        )
        key = f"lessons/{lesson.id}/a/teacher/teacher-00003.mp4"
        backend_id = storage.begin(key)

        async def part() -> AsyncIterator[bytes]:
            yield b"part of a video"

        await storage.put_part(backend_id, 1, part())
        s.add(
            UploadSession(
                id="u1",
                lesson_id=lesson.id,
                classroom_id="a",
                rel="teacher/teacher-00003.mp4",
                key=key,
                size=100,
                sha256="0" * 64,
                backend_id=backend_id,
                part_size=storage.part_size,
                state="open",
                created_at=utcnow(),
            )
        )
        s.commit()
    # Staging nobody will finish: an upload begun (and last touched) two days ago.
    abandoned = storage.begin("lessons/gone/a/teacher/teacher-00001.mp4")
    old = (datetime.now(UTC) - timedelta(days=2)).timestamp()
    for path in (storage.root / ".multipart" / abandoned,):
        os.utime(path, (old, old))
    young = storage.begin("lessons/young/a/teacher/teacher-00001.mp4")

    cleared = run_retention(db, storage, RetentionPolicy(days={"synchronous": 30}))
    assert cleared == [lesson.id]
    assert not base.exists(), sorted(p.name for p in base.rglob("*"))
    staging = storage.root / ".multipart"
    assert not (staging / backend_id).exists() and not (staging / abandoned).exists()
    assert (staging / young).exists()
    with db() as s:
        audited = {d.key.removeprefix(f"lessons/{lesson.id}/") for d in s.scalars(select(Deletion))}
        assert set(files) <= audited
        assert s.scalars(select(RecordingManifest)).all() == []
        assert s.get(UploadSession, "u1").state == "failed"  # type: ignore[union-attr]


def test_a_published_recording_outlives_its_lessons_retention(tmp_path: pathlib.Path) -> None:
    """The resource library keeps what it publishes: past the lesson's retention the
    published track's stitched file stays (and stays in the catalogue); its segments and
    the unpublished tracks (the children's pictures) go as the policy says."""
    from controller.db.models import Recording
    from controller.recordings.search import publish

    db, storage = _county(tmp_path)
    t0 = datetime(2026, 1, 5, tzinfo=UTC)

    def put(key: str, data: bytes) -> None:
        path = storage.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    with db() as s:
        lesson = schedule_lesson(s, "a", ["b"], t0, t0 + timedelta(minutes=40))
        lid = lesson.id
        stitched = {}
        for cid, track in (("a", "teacher"), ("b", "student")):
            seg = f"lessons/{lid}/{cid}/{track}/{track}-00001.mp4"
            put(seg, b"segment")
            record_segment(s, lid, cid, track, f"{track}-00001.mp4", seg, "e" * 64, 7)
            stitched[track] = f"lessons/{lid}/{cid}/{track}.mp4"
            put(stitched[track], b"stitched")
            s.add(
                Recording(
                    lesson_id=lid,
                    classroom_id=cid,
                    track=track,
                    kind="video",
                    path=stitched[track],
                    codec="h264",
                    duration_s=2400.0,
                    segments=1,
                    sha256="d" * 64,
                    created_at=t0,
                )
            )
        s.commit()
        publish(s, lid, "a", "teacher", "scheduler")
    policy = RetentionPolicy(days={"synchronous": 30})
    later = t0 + timedelta(days=60)
    assert run_retention(db, storage, policy, now=later) == [lid]
    root = storage.root / "lessons" / lid
    assert (storage.root / stitched["teacher"]).read_bytes() == b"stitched"
    assert not (storage.root / stitched["student"]).exists(), "an unpublished track outlived"
    assert not (root / "a" / "teacher" / "teacher-00001.mp4").exists()
    assert not (root / "b" / "student" / "student-00001.mp4").exists()
    with db() as s:
        deleted = {d.key for d in s.scalars(select(Deletion))}
        assert stitched["teacher"] not in deleted
        assert stitched["student"] in deleted
        assert [r.track for r in s.scalars(select(Recording))] == ["teacher"]
        assert s.scalars(select(StoredSegment)).all() == []
    # Later runs find only the published file: nothing more is deleted or audited.
    assert run_retention(db, storage, policy, now=later + timedelta(days=1)) == []
    with db() as s:
        assert {d.key for d in s.scalars(select(Deletion))} == deleted
