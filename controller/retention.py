"""Retention: how long each kind of lesson's recordings are kept, and the audit of deletions.

Every object deleted from storage — by the policy or by a person — leaves a ``Deletion``
row naming the object, its size and checksum, the reason and who did it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Deletion, Lesson, Recording, StoredSegment
from controller.db.session import as_utc, utcnow
from controller.storage.backend import StorageBackend

log = logging.getLogger(__name__)

# Days kept after the lesson ends; None keeps them for good. Showcase lessons (master
# teacher, open school) feed the resource library, so they are kept longest.
DEFAULT_DAYS: dict[str, int | None] = {
    "synchronous": 365,
    "delivery": 365,
    "master_teacher": 3 * 365,
    "open_school": 3 * 365,
    "research": 180,
}


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep recordings, per lesson kind (kinds not listed use ``default_days``)."""

    days: dict[str, int | None] = field(default_factory=lambda: dict(DEFAULT_DAYS))
    default_days: int | None = 365

    def keep_days(self, kind: str) -> int | None:
        """Days a lesson of ``kind`` is kept (None: for good)."""
        return self.days.get(kind, self.default_days)


def delete_lesson_recordings(
    db: Session, storage: StorageBackend, lesson: Lesson, reason: str, actor: str
) -> int:
    """Delete every stored object of a lesson, auditing each; returns bytes freed."""
    freed = 0
    segments = db.scalars(select(StoredSegment).where(StoredSegment.lesson_id == lesson.id)).all()
    recs = db.scalars(select(Recording).where(Recording.lesson_id == lesson.id)).all()
    objects = [(s.classroom_id, s.path, s.sha256) for s in segments]
    objects += [(r.classroom_id, r.path, r.sha256) for r in recs]
    for classroom_id, key, sha in objects:
        size = storage.delete(key)
        freed += size
        db.add(
            Deletion(
                at=utcnow(),
                lesson_id=lesson.id,
                classroom_id=classroom_id,
                key=key,
                bytes=size,
                sha256=sha,
                reason=reason,
                actor=actor,
            )
        )
    db.execute(delete(StoredSegment).where(StoredSegment.lesson_id == lesson.id))
    db.execute(delete(Recording).where(Recording.lesson_id == lesson.id))
    db.commit()
    return freed


def run_retention(
    sessions: sessionmaker[Session],
    storage: StorageBackend,
    policy: RetentionPolicy,
    now: datetime | None = None,
) -> list[str]:
    """Delete recordings past their kind's retention; returns the lessons cleared."""
    now = now or utcnow()
    cleared: list[str] = []
    with sessions() as db:
        with_objects = select(StoredSegment.lesson_id).union(select(Recording.lesson_id))
        lessons = db.scalars(select(Lesson).where(Lesson.id.in_(with_objects))).all()
        for lesson in lessons:
            days = policy.keep_days(lesson.kind)
            if days is None or as_utc(lesson.end_at) + timedelta(days=days) > now:
                continue
            freed = delete_lesson_recordings(
                db,
                storage,
                lesson,
                f"retention: {lesson.kind} lessons are kept {days} days",
                "retention-policy",
            )
            log.info("retention deleted lesson %s recordings (%d bytes)", lesson.id, freed)
            cleared.append(lesson.id)
    return cleared
