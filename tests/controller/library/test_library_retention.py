"""Retention and the resource library: a pending or approved item's file (a whole
recording or a clip) outlives its lesson's retention; once unpublished or rejected it
goes with the lesson, audited, and its library row with it."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.auth.scope import Scope
from controller.db.models import Deletion, Lesson, LibraryItem, PublishedRecording, Recording
from controller.db.session import make_engine, migrate, sessions
from controller.lessons.scheduling import schedule_lesson
from controller.library import store
from controller.library.metadata import ItemMetadata
from controller.recordings.retention import RetentionPolicy, delete_lesson_recordings, run_retention
from controller.storage.local import LocalStorage

T0 = datetime(2026, 1, 5, tzinfo=UTC)
POLICY = RetentionPolicy(days={"synchronous": 30})


def _county(tmp_path: pathlib.Path) -> tuple[sessionmaker[Session], LocalStorage]:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    db = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with db() as s:
        add_classroom(s, "a", "A", "City School", keys.public)
        add_classroom(s, "b", "B", "Village School", keys.public)
    return db, LocalStorage(tmp_path / "storage")


def _lesson_with_recording(
    db: sessionmaker[Session], storage: LocalStorage, start: datetime
) -> tuple[str, str, str]:
    """A lesson whose lead classroom has a stitched track and a clip cut from it;
    (lesson id, recording key, clip key)."""
    with db() as s:
        lesson = schedule_lesson(s, "a", ["b"], start, start + timedelta(minutes=40))
        lid = lesson.id
        rec_key = f"lessons/{lid}/a/teacher.mp4"
        clip_key = f"lessons/{lid}/a/clips/teacher-0123456789ab.mp4"
        for key in (rec_key, clip_key):
            (storage.root / key).parent.mkdir(parents=True, exist_ok=True)
            (storage.root / key).write_bytes(b"mp4")
        s.add(
            Recording(
                lesson_id=lid,
                classroom_id="a",
                track="teacher",
                kind="video",
                path=rec_key,
                codec="h264",
                duration_s=2400.0,
                segments=1,
                sha256="d" * 64,
                created_at=start,
            )
        )
        s.commit()
    return lid, rec_key, clip_key


def _ask(db: sessionmaker[Session], lid: str, clip_key: str) -> tuple[int, int]:
    """Ask to publish the whole recording and its clip (both pending); their ids."""
    with db() as s:
        rec = store.find_recording(s, lid, "a", "teacher")
        whole, _ = store.request_publish(s, rec, ItemMetadata(title="Whole"), "scheduler")
        clip = store.add_clip(
            s,
            rec,
            ItemMetadata(title="Clip"),
            "scheduler",
            path=clip_key,
            start_s=60.0,
            end_s=300.0,
            duration_s=240.0,
            codec="h264",
            sha256="c" * 64,
            size=3,
        )
        return whole.id, clip.id


def test_pending_and_approved_items_outlive_retention_unpublished_ones_do_not(
    tmp_path: pathlib.Path,
) -> None:
    db, storage = _county(tmp_path)
    lid, rec_key, clip_key = _lesson_with_recording(db, storage, T0)
    whole, clip = _ask(db, lid, clip_key)
    later = T0 + timedelta(days=60)

    # Pending: kept past retention (the lesson has nothing else, so nothing is cleared).
    assert run_retention(db, storage, POLICY, now=later) == []
    assert (storage.root / rec_key).exists() and (storage.root / clip_key).exists()

    # Approved: kept, and counted as published.
    with db() as s:
        for item_id in (whole, clip):
            store.review(s, store.get_item(s, Scope(), str(item_id)), True, "", "inspector")
        assert s.get(PublishedRecording, (lid, "a", "teacher")) is not None
    assert run_retention(db, storage, POLICY, now=later) == []
    assert (storage.root / rec_key).exists() and (storage.root / clip_key).exists()

    # Unpublished: the next run deletes both files, audits each, and drops the rows.
    with db() as s:
        for item_id in (whole, clip):
            item = store.get_item(s, Scope(), str(item_id))
            store.unpublish(s, item, "replaced by a newer lesson", "scheduler")
        assert s.get(PublishedRecording, (lid, "a", "teacher")) is None
    assert run_retention(db, storage, POLICY, now=later) == [lid]
    assert not (storage.root / rec_key).exists()
    assert not (storage.root / clip_key).exists()
    with db() as s:
        deleted = {d.key: d.reason for d in s.scalars(select(Deletion))}
        assert rec_key in deleted and clip_key in deleted
        assert "30 days" in deleted[clip_key]
        assert s.scalars(select(LibraryItem)).all() == []
    assert run_retention(db, storage, POLICY, now=later + timedelta(days=1)) == []


def test_a_rejected_clip_goes_but_an_approved_recording_stays(tmp_path: pathlib.Path) -> None:
    db, storage = _county(tmp_path)
    lid, rec_key, clip_key = _lesson_with_recording(db, storage, T0)
    whole, clip = _ask(db, lid, clip_key)
    with db() as s:
        store.review(s, store.get_item(s, Scope(), str(whole)), True, "", "inspector")
        store.review(s, store.get_item(s, Scope(), str(clip)), False, "blurry", "inspector")
    assert run_retention(db, storage, POLICY, now=T0 + timedelta(days=60)) == [lid]
    assert (storage.root / rec_key).exists()
    assert not (storage.root / clip_key).exists()
    with db() as s:
        assert [i.id for i in s.scalars(select(LibraryItem))] == [whole]
    # A lesson inside its retention keeps even a rejected clip.
    lid2, _, clip2 = _lesson_with_recording(db, storage, T0 + timedelta(days=50))
    _, rejected = _ask(db, lid2, clip2)
    with db() as s:
        store.review(s, store.get_item(s, Scope(), str(rejected)), False, "no", "inspector")
    assert lid2 not in run_retention(db, storage, POLICY, now=T0 + timedelta(days=60))
    assert (storage.root / clip2).exists()


def test_a_deletion_by_a_person_takes_the_library_items_with_their_files(
    tmp_path: pathlib.Path,
) -> None:
    """An erasure or ``delete-recordings`` overrides the library: the approved items whose
    files it deleted are gone too, not left pointing at nothing."""
    db, storage = _county(tmp_path)
    lid, rec_key, clip_key = _lesson_with_recording(db, storage, T0)
    whole, clip = _ask(db, lid, clip_key)
    with db() as s:
        for item_id in (whole, clip):
            store.review(s, store.get_item(s, Scope(), str(item_id)), True, "", "inspector")
        lesson = s.get(Lesson, lid)
        assert lesson is not None
        delete_lesson_recordings(s, storage, lesson, "erasure of t-wang: asked", "admin")
    assert not (storage.root / rec_key).exists() and not (storage.root / clip_key).exists()
    with db() as s:
        assert s.scalars(select(LibraryItem)).all() == []
