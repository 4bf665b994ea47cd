"""Retention: how long each kind of lesson's recordings are kept, and the audit of deletions.

Every object deleted from storage — by the policy or by a person — leaves a ``Deletion``
row naming the object, its size and checksum, the reason and who did it. Clearing a lesson
takes everything of it out of storage, not only what the catalogue lists: segments,
stitched files, manifests, half-assembled files, and uploads still open (their staged or
S3 multipart parts are aborted), so no video outlives its retention. Multipart uploads
begun more than a day ago and never finished are aborted on every run as well.

A track published to the resource library (资源库) outlives its lesson's retention: its
stitched file, its catalogue row and its classroom's manifest are kept for as long as it
stays published, or is waiting for review; so does a clip cut from it (stored under the
lesson). Everything else of the lesson (segments, unpublished tracks, rejected or
unpublished clips, the other classrooms' pictures of the children) still goes when the
policy says (``controller.library.store.kept_keys``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select, union
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import (
    Deletion,
    Lesson,
    Recording,
    RecordingManifest,
    StoredSegment,
    UploadSession,
)
from controller.db.session import as_utc, utcnow
from controller.library.store import forget_cleared, kept_keys, lessons_with_clips
from controller.storage.backend import StorageBackend, StorageError

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
# A multipart upload no agent finished within this long is abandoned: abort it.
STALE_UPLOAD = timedelta(days=1)


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep recordings, per lesson kind (kinds not listed use ``default_days``)."""

    days: dict[str, int | None] = field(default_factory=lambda: dict(DEFAULT_DAYS))
    default_days: int | None = 365

    def keep_days(self, kind: str) -> int | None:
        """Days a lesson of ``kind`` is kept (None: for good)."""
        return self.days.get(kind, self.default_days)


def _audit(
    db: Session,
    lesson_id: str,
    classroom_id: str,
    key: str,
    size: int,
    sha: str,
    reason: str,
    actor: str,
) -> None:
    db.add(
        Deletion(
            at=utcnow(),
            lesson_id=lesson_id,
            classroom_id=classroom_id,
            key=key,
            bytes=size,
            sha256=sha,
            reason=reason,
            actor=actor,
        )
    )


def delete_lesson_recordings(
    db: Session,
    storage: StorageBackend,
    lesson: Lesson,
    reason: str,
    actor: str,
    classroom_id: str | None = None,
    keep: frozenset[str] = frozenset(),
) -> int:
    """Delete every stored object of a lesson (of one classroom, if given), auditing each,
    except the recordings whose storage keys are in ``keep``; returns bytes freed."""
    seg_q = select(StoredSegment).where(StoredSegment.lesson_id == lesson.id)
    rec_q = select(Recording).where(Recording.lesson_id == lesson.id)
    up_q = select(UploadSession).where(UploadSession.lesson_id == lesson.id)
    if classroom_id is not None:
        seg_q = seg_q.where(StoredSegment.classroom_id == classroom_id)
        rec_q = rec_q.where(Recording.classroom_id == classroom_id)
        up_q = up_q.where(UploadSession.classroom_id == classroom_id)
    known: dict[str, tuple[str, str]] = {}  # key → (classroom, sha256) from the catalogue
    for s in db.scalars(seg_q).all():
        known[s.path] = (s.classroom_id, s.sha256)
    # Classrooms with a recording kept (published): their manifests stay too, since the
    # catalogue lists a recording with its manifest.
    kept_rooms: set[str] = set()
    for r in db.scalars(rec_q).all():
        known[r.path] = (r.classroom_id, r.sha256)
        if r.path in keep:
            kept_rooms.add(r.classroom_id)
    uploads = db.scalars(up_q).all()
    for u in uploads:
        known.setdefault(u.key, (u.classroom_id, u.sha256 if u.state == "stored" else ""))
    # Uploads still open hold parts (staged files or S3 multipart parts): abort them first.
    for u in uploads:
        if u.state == "open":
            storage.abort(u.key, u.backend_id)
            u.state, u.error = "failed", f"aborted: {reason}"
    prefix = f"lessons/{lesson.id}" + (f"/{classroom_id}" if classroom_id else "")
    keys = (set(storage.keys(prefix)) | set(known)) - keep
    freed = 0
    for key in sorted(keys):
        owner, sha = known.get(key, (_classroom_of(key), ""))
        size = storage.delete(key)  # 0 when catalogued but already gone: still audited
        freed += size
        _audit(db, lesson.id, owner, key, size, sha, reason, actor)
    prune = getattr(storage, "prune", None)
    if prune is not None and not keep:
        prune(prefix)
    for model in (StoredSegment, Recording, RecordingManifest):
        stmt = delete(model).where(model.lesson_id == lesson.id)
        if classroom_id is not None:
            stmt = stmt.where(model.classroom_id == classroom_id)
        if model is Recording and keep:
            stmt = stmt.where(Recording.path.not_in(keep))
        if model is RecordingManifest and kept_rooms:
            stmt = stmt.where(RecordingManifest.classroom_id.not_in(kept_rooms))
        db.execute(stmt)
    # Library items whose file just went (a kept one's file is in ``keep``).
    forget_cleared(db, lesson.id, keep, classroom_id)
    # Finished uploads of what was cleared: nothing left to revisit.
    for u in uploads:
        if u.state == "stored":
            u.state, u.error = "failed", f"object deleted: {reason}"
    db.commit()
    return freed


def _published_keys(db: Session, lesson_id: str) -> frozenset[str]:
    """The storage keys of a lesson's recordings and clips the resource library keeps."""
    return kept_keys(db, lesson_id)


def _anything_but(
    db: Session, storage: StorageBackend, lesson_id: str, keep: frozenset[str]
) -> bool:
    """Whether a lesson holds anything besides ``keep`` (in storage or in the catalogue)."""
    if set(storage.keys(f"lessons/{lesson_id}")) - keep:
        return True
    if db.scalars(select(StoredSegment).where(StoredSegment.lesson_id == lesson_id)).first():
        return True
    open_uploads = select(UploadSession).where(
        UploadSession.lesson_id == lesson_id, UploadSession.state != "failed"
    )
    if db.scalars(open_uploads).first():
        return True
    paths = db.scalars(select(Recording.path).where(Recording.lesson_id == lesson_id)).all()
    return bool(set(paths) - keep)


def _classroom_of(key: str) -> str:
    parts = key.split("/")
    return parts[2] if len(parts) > 2 else ""


def abort_stale_uploads(
    sessions: sessionmaker[Session], storage: StorageBackend, now: datetime
) -> list[str]:
    """Abort multipart uploads begun over a day ago and never finished (their parts hold
    video), and mark their upload sessions failed so the agent opens a fresh one."""
    cutoff = now - STALE_UPLOAD
    with sessions() as db:
        # Our own record of when an upload began wins over the store's (some S3-compatible
        # stores report no real start time): a young open session is never aborted.
        young = frozenset(
            db.scalars(
                select(UploadSession.backend_id).where(
                    UploadSession.state == "open", UploadSession.created_at >= cutoff
                )
            ).all()
        )
    dropped = storage.abort_stale_uploads(cutoff, young)
    with sessions() as db:
        stale = db.scalars(
            select(UploadSession).where(
                UploadSession.state == "open", UploadSession.created_at < cutoff
            )
        ).all()
        for u in stale:
            storage.abort(u.key, u.backend_id)
            u.state, u.error = "failed", "aborted: unfinished for over a day"
        db.commit()
    if dropped:
        log.info("retention aborted %d unfinished upload(s): %s", len(dropped), dropped[:5])
    return dropped


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
        with_objects = union(
            select(StoredSegment.lesson_id),
            select(Recording.lesson_id),
            select(RecordingManifest.lesson_id),
            select(UploadSession.lesson_id).where(UploadSession.state != "failed"),
            lessons_with_clips(),
        )
        lessons = db.scalars(select(Lesson).where(Lesson.id.in_(with_objects))).all()
        for lesson in lessons:
            days = policy.keep_days(lesson.kind)
            if days is None or as_utc(lesson.end_at) + timedelta(days=days) > now:
                continue
            keep = _published_keys(db, lesson.id)
            if keep and not _anything_but(db, storage, lesson.id, keep):
                continue  # only its published recordings are left: nothing to do
            freed = delete_lesson_recordings(
                db,
                storage,
                lesson,
                f"retention: {lesson.kind} lessons are kept {days} days",
                "retention-policy",
                keep=keep,
            )
            log.info(
                "retention deleted lesson %s recordings (%d bytes)%s",
                lesson.id,
                freed,
                f"; kept {len(keep)} published to the resource library" if keep else "",
            )
            cleared.append(lesson.id)
    try:
        abort_stale_uploads(sessions, storage, now)
    except StorageError:
        log.exception("could not abort stale uploads; trying again on the next run")
    return cleared
