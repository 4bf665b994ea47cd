"""Whose data is where: a teacher's or a classroom's lessons and recordings.

A teacher is filmed by the lead classroom of the lessons they teach, so a teacher's
recordings are that classroom's recordings of those lessons. A classroom's (a class's)
recordings are every recording that classroom made, whichever lesson it was in.
Erasing deletes those objects from storage and the catalogue (a ``Deletion`` row for
each object) and writes one audit-log row saying who erased whose data and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from controller.auth import audit
from controller.common.errors import InvalidRequest, NotFound
from controller.db.models import (
    Lesson,
    LessonReceiver,
    Recording,
    StoredSegment,
    Teacher,
)
from controller.db.session import as_utc, utcnow
from controller.recordings.retention import delete_lesson_recordings
from controller.storage.backend import StorageBackend


@dataclass(frozen=True)
class Subject:
    """Whose data: a teacher (by id or name) or a classroom (by id)."""

    teacher: str | None = None
    classroom: str | None = None

    def __post_init__(self) -> None:
        if (self.teacher is None) == (self.classroom is None):
            raise InvalidRequest("give exactly one of --teacher or --classroom")

    @property
    def label(self) -> str:
        """``teacher:<id>`` or ``classroom:<id>``, as the audit log names it."""
        return f"teacher:{self.teacher}" if self.teacher else f"classroom:{self.classroom}"


def _teacher_id(db: Session, name: str) -> str:
    found = db.scalars(select(Teacher).where(or_(Teacher.id == name, Teacher.name == name))).all()
    if len(found) > 1:
        raise InvalidRequest(
            f"{len(found)} teachers are called {name!r}: give the id "
            f"({', '.join(t.id for t in found)})"
        )
    if found:
        return found[0].id
    # Lessons may name a teacher the timetable does not list.
    if db.scalar(select(Lesson.id).where(Lesson.teacher_id == name).limit(1)) is not None:
        return name
    raise NotFound(f"no teacher {name!r} (by id or name) and no lesson names one")


def lessons_of(db: Session, who: Subject) -> list[tuple[Lesson, str | None]]:
    """Each lesson with the subject's data, and whose recordings hold it (None: all)."""
    if who.teacher is not None:
        tid = _teacher_id(db, who.teacher)
        lessons = db.scalars(
            select(Lesson).where(Lesson.teacher_id == tid).order_by(Lesson.start_at)
        ).all()
        return [(lesson, lesson.lead_classroom_id) for lesson in lessons]
    assert who.classroom is not None
    cid = who.classroom
    received = select(LessonReceiver.lesson_id).where(LessonReceiver.classroom_id == cid)
    lessons = db.scalars(
        select(Lesson)
        .where(or_(Lesson.lead_classroom_id == cid, Lesson.id.in_(received)))
        .order_by(Lesson.start_at)
    ).all()
    if not lessons and db.scalar(select(Recording.id).where(Recording.classroom_id == cid)) is None:
        raise NotFound(f"classroom {cid!r} has no lessons or recordings")
    return [(lesson, cid) for lesson in lessons]


def export(db: Session, who: Subject) -> dict[str, object]:
    """The subject's lessons and the recordings that hold them, as JSON-ready data."""
    out = []
    for lesson, classroom in lessons_of(db, who):
        recs = db.scalars(
            select(Recording)
            .where(Recording.lesson_id == lesson.id, Recording.classroom_id == classroom)
            .order_by(Recording.id)
        ).all()
        segs = db.scalars(
            select(StoredSegment).where(
                StoredSegment.lesson_id == lesson.id, StoredSegment.classroom_id == classroom
            )
        ).all()
        out.append(
            {
                "id": lesson.id,
                "kind": lesson.kind,
                "title": lesson.title,
                "subject": lesson.subject,
                "teacher": lesson.teacher_id,
                "lead": lesson.lead_classroom_id,
                "receivers": [r.classroom_id for r in lesson.receivers],
                "start_at": as_utc(lesson.start_at).isoformat(),
                "end_at": as_utc(lesson.end_at).isoformat(),
                "state": lesson.state,
                "recordings": [
                    {
                        "classroom": r.classroom_id,
                        "track": r.track,
                        "kind": r.kind,
                        "key": r.path,
                        "duration_s": r.duration_s,
                        "sha256": r.sha256,
                        "created_at": as_utc(r.created_at).isoformat(),
                    }
                    for r in recs
                ],
                "segments_stored": len(segs),
                "segment_bytes": sum(s.bytes for s in segs),
            }
        )
    return {"subject": who.label, "exported_at": utcnow().isoformat(), "lessons": out}


def erase(
    db: Session, storage: StorageBackend, who: Subject, actor: str, reason: str
) -> dict[str, object]:
    """Delete the subject's recordings from storage and catalogue; audited."""
    if not reason.strip():
        raise InvalidRequest("say why (--reason): it is kept in the audit log")
    cleared: list[str] = []
    freed = 0
    for lesson, classroom in lessons_of(db, who):
        freed += delete_lesson_recordings(
            db, storage, lesson, f"erasure of {who.label}: {reason}", actor, classroom
        )
        cleared.append(lesson.id)
    summary: dict[str, object] = {"subject": who.label, "lessons": cleared, "bytes": freed}
    audit.record(
        db,
        "personal_data.erase",
        username=actor,
        target=who.label,
        detail={**summary, "reason": reason},
        remote="cli",
    )
    return summary
