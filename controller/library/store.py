"""The resource library's records (资源库): asking to publish, review, unpublish, listing,
and which stored files the library keeps past retention.

An item is ``pending`` when asked for, then ``approved`` or ``rejected`` by a reviewer who
is not the one who asked; an approved (or pending) item can be ``unpublished``. Approving
a whole recording also marks its track in ``PublishedRecording``, which the quota reports
count as a quality lesson (优质课例); unpublishing takes that mark away again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from controller.auth.scope import Scope
from controller.common.errors import ControllerError, InvalidRequest, NotFound, WrongState
from controller.db.models import Classroom, Lesson, LibraryItem, PublishedRecording, Recording
from controller.db.session import as_utc, utcnow
from controller.library.metadata import ItemMetadata

PENDING, APPROVED, REJECTED, UNPUBLISHED = "pending", "approved", "rejected", "unpublished"
STATUSES = (PENDING, APPROVED, REJECTED, UNPUBLISHED)
KEPT = (PENDING, APPROVED)  # their media outlives the lesson's retention
MAX_REASON_CHARS = 500
MAX_LIMIT = 500


class SelfReview(ControllerError):
    """A reviewer deciding on their own request (answered as 403)."""


def _iso(value: Any) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def item_document(item: LibraryItem) -> dict[str, Any]:
    """The item as the API shows it."""
    base = f"/api/v1/library/items/{item.id}"
    return {
        "id": item.id,
        "kind": item.kind,
        "status": item.status,
        "lesson": item.lesson_id,
        "classroom": item.classroom_id,
        "track": item.track,
        "clip": (
            {"start_s": item.clip_start_s, "end_s": item.clip_end_s}
            if item.kind == "clip"
            else None
        ),
        "duration_s": round(item.duration_s, 3) if item.duration_s is not None else None,
        "codec": item.codec,
        "metadata": {
            "title": item.title,
            "subject": item.subject,
            "grade": item.grade,
            "chapter": item.chapter,
            "teacher": item.teacher,
            "school": item.school,
        },
        "requested_by": item.requested_by,
        "requested_at": _iso(item.requested_at),
        "reviewed_by": item.reviewed_by,
        "reviewed_at": _iso(item.reviewed_at),
        "review_reason": item.review_reason,
        "unpublished_by": item.unpublished_by,
        "unpublished_at": _iso(item.unpublished_at),
        "unpublish_reason": item.unpublish_reason,
        "media_url": base + "/media",
        "package_url": base + "/package" if item.status == APPROVED else None,
    }


def find_recording(db: Session, lesson_id: str, classroom_id: str, track: str) -> Recording:
    """The stitched recording of a track, or NotFound naming it."""
    rec = db.scalar(
        select(Recording).where(
            Recording.lesson_id == lesson_id,
            Recording.classroom_id == classroom_id,
            Recording.track == track,
        )
    )
    if rec is None:
        raise NotFound(
            f"no recording of track {track!r} of {classroom_id} in lesson {lesson_id}; "
            "GET /api/v1/recordings lists them"
        )
    return rec


def visible_recording(
    db: Session, scope: Scope, lesson_id: str, classroom_id: str, track: str
) -> Recording:
    """A recording the caller's scope sees (one out of scope is NotFound, as if absent)."""
    if not scope.sees_classroom(db, classroom_id):
        raise NotFound(f"{classroom_id}: {scope.hidden('classroom')}")
    return find_recording(db, lesson_id, classroom_id, track)


def lesson_defaults(db: Session, rec: Recording) -> dict[str, str]:
    """Metadata a request leaves out, taken from the lesson and the classroom."""
    lesson = db.get(Lesson, rec.lesson_id)
    school = db.scalar(select(Classroom.school).where(Classroom.id == rec.classroom_id))
    fallback = f"{rec.lesson_id} {rec.classroom_id} {rec.track}"
    return {
        "title": (lesson.title if lesson is not None else "") or fallback,
        "subject": (lesson.subject if lesson is not None else "") or "",
        "teacher": (lesson.teacher_id if lesson is not None else "") or "",
        "school": school or "",
    }


def request_publish(
    db: Session, rec: Recording, meta: ItemMetadata, actor: str
) -> tuple[LibraryItem, bool]:
    """Ask to publish a whole recording: a pending item. Asking again while one is pending
    or approved returns that one; the flag says whether the item is new."""
    existing = db.scalar(
        select(LibraryItem).where(
            LibraryItem.kind == "recording",
            LibraryItem.lesson_id == rec.lesson_id,
            LibraryItem.classroom_id == rec.classroom_id,
            LibraryItem.track == rec.track,
            LibraryItem.status.in_(KEPT),
        )
    )
    if existing is not None:
        return existing, False
    item = _new_item(rec, meta, actor, kind="recording")
    item.duration_s, item.codec = rec.duration_s, rec.codec
    db.add(item)
    db.commit()
    return item, True


def add_clip(
    db: Session,
    rec: Recording,
    meta: ItemMetadata,
    actor: str,
    *,
    path: str,
    start_s: float,
    end_s: float,
    duration_s: float,
    codec: str,
    sha256: str,
    size: int,
) -> LibraryItem:
    """A clip cut and stored from ``rec``: a pending item of its own."""
    item = _new_item(rec, meta, actor, kind="clip")
    item.path, item.clip_start_s, item.clip_end_s = path, start_s, end_s
    item.duration_s, item.codec, item.sha256, item.bytes = duration_s, codec, sha256, size
    db.add(item)
    db.commit()
    return item


def _new_item(rec: Recording, meta: ItemMetadata, actor: str, kind: str) -> LibraryItem:
    return LibraryItem(
        kind=kind,
        lesson_id=rec.lesson_id,
        classroom_id=rec.classroom_id,
        track=rec.track,
        status=PENDING,
        requested_by=actor,
        requested_at=utcnow(),
        review_reason="",
        unpublish_reason="",
        **meta.as_dict(),
    )


def get_item(db: Session, scope: Scope, item_id: str) -> LibraryItem:
    """An item in the caller's scope, or NotFound."""
    try:
        key = int(item_id)
    except ValueError:
        raise NotFound(f"library item {item_id!r}: ids are whole numbers") from None
    item = db.get(LibraryItem, key) if 0 < key < 2**31 else None
    if item is None or not scope.sees_classroom(db, item.classroom_id):
        raise NotFound(f"no library item {item_id}; GET /api/v1/library/items lists them")
    return item


def reason_text(value: object, required: bool) -> str:
    """A reason given in a body: text, capped, required for rejecting and unpublishing."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidRequest(f"field 'reason' must be text; got {type(value).__name__}")
    text = " ".join(value.split())
    if len(text) > MAX_REASON_CHARS:
        raise InvalidRequest(
            f"field 'reason' has {len(text)} characters; at most {MAX_REASON_CHARS}"
        )
    if required and not text:
        raise InvalidRequest("field 'reason' is required: say why, for the requester and audit")
    return text


def review(db: Session, item: LibraryItem, approve: bool, reason: str, actor: str) -> LibraryItem:
    """Approve or reject a pending item; the requester may not decide on their own."""
    if item.status != PENDING:
        raise WrongState(f"library item {item.id} is {item.status}; only a pending one is reviewed")
    if actor == item.requested_by:
        raise SelfReview(
            f"library item {item.id} was asked for by you ({actor}); another reviewer "
            "must approve or reject it"
        )
    item.status = APPROVED if approve else REJECTED
    item.reviewed_by, item.reviewed_at, item.review_reason = actor, utcnow(), reason
    if approve and item.kind == "recording":
        key = (item.lesson_id, item.classroom_id, item.track)
        if db.get(PublishedRecording, key) is None:
            db.add(
                PublishedRecording(
                    lesson_id=item.lesson_id,
                    classroom_id=item.classroom_id,
                    track=item.track,
                    published_by=actor,
                    published_at=item.reviewed_at,
                )
            )
    db.commit()
    return item


def unpublish(db: Session, item: LibraryItem, reason: str, actor: str) -> LibraryItem:
    """Take a pending or approved item out of the library; its media then follows the
    lesson's retention."""
    if item.status not in KEPT:
        raise WrongState(f"library item {item.id} is already {item.status}")
    item.status = UNPUBLISHED
    item.unpublished_by, item.unpublished_at, item.unpublish_reason = actor, utcnow(), reason
    if item.kind == "recording":
        db.flush()
        still = db.scalar(
            select(func.count()).where(
                LibraryItem.kind == "recording",
                LibraryItem.lesson_id == item.lesson_id,
                LibraryItem.classroom_id == item.classroom_id,
                LibraryItem.track == item.track,
                LibraryItem.status == APPROVED,
            )
        )
        if not still:
            db.execute(
                delete(PublishedRecording).where(
                    PublishedRecording.lesson_id == item.lesson_id,
                    PublishedRecording.classroom_id == item.classroom_id,
                    PublishedRecording.track == item.track,
                )
            )
    db.commit()
    return item


def list_items(
    db: Session, scope: Scope, statuses: tuple[str, ...], limit: int, offset: int
) -> dict[str, Any]:
    """One page of items in ``statuses`` within the caller's scope, newest first."""
    where = [LibraryItem.status.in_(statuses)]
    rooms = scope.classroom_ids(db)
    if rooms is not None:
        where.append(LibraryItem.classroom_id.in_(rooms))
    total = db.scalar(select(func.count()).select_from(LibraryItem).where(*where)) or 0
    rows = db.scalars(
        select(LibraryItem)
        .where(*where)
        .order_by(LibraryItem.requested_at.desc(), LibraryItem.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": [item_document(i) for i in rows],
    }


def media_key(db: Session, item: LibraryItem) -> tuple[str, float] | None:
    """The storage key of an item's file and its duration (None: the file is gone)."""
    if item.kind == "clip":
        return (item.path, item.duration_s or 0.0) if item.path else None
    rec = db.scalar(
        select(Recording).where(
            Recording.lesson_id == item.lesson_id,
            Recording.classroom_id == item.classroom_id,
            Recording.track == item.track,
        )
    )
    return (rec.path, rec.duration_s) if rec is not None else None


def kept_keys(db: Session, lesson_id: str) -> frozenset[str]:
    """The storage keys of a lesson the library keeps past retention: the recordings
    marked published and those with a pending or approved item, and such items' clips."""
    published = select(Recording.path).join(
        PublishedRecording,
        (PublishedRecording.lesson_id == Recording.lesson_id)
        & (PublishedRecording.classroom_id == Recording.classroom_id)
        & (PublishedRecording.track == Recording.track),
    )
    asked = select(Recording.path).join(
        LibraryItem,
        (LibraryItem.lesson_id == Recording.lesson_id)
        & (LibraryItem.classroom_id == Recording.classroom_id)
        & (LibraryItem.track == Recording.track)
        & (LibraryItem.kind == "recording")
        & LibraryItem.status.in_(KEPT),
    )
    clips = select(LibraryItem.path).where(
        LibraryItem.kind == "clip", LibraryItem.status.in_(KEPT), LibraryItem.path.is_not(None)
    )
    keys: set[str] = set()
    for stmt in (published, asked):
        keys.update(db.scalars(stmt.where(Recording.lesson_id == lesson_id)))
    keys.update(p for p in db.scalars(clips.where(LibraryItem.lesson_id == lesson_id)) if p)
    return frozenset(keys)


def lessons_with_clips() -> Any:
    """A SELECT of lessons holding a clip file (retention visits them too)."""
    return select(LibraryItem.lesson_id).where(
        LibraryItem.kind == "clip", LibraryItem.path.is_not(None)
    )


def forget_cleared(
    db: Session, lesson_id: str, kept: frozenset[str], classroom_id: str | None = None
) -> None:
    """After a lesson's recordings (of one classroom, if given) were deleted except the
    keys in ``kept``: drop the library items whose file went with them. Retention keeps
    every pending or approved item's file, so only rejected and unpublished items go
    then; a deletion by a person (``classroom-controller delete-recordings``, an erasure)
    takes every item of what it deleted. The files' deletions are audited in ``Deletion``."""
    where = [LibraryItem.lesson_id == lesson_id]
    if classroom_id is not None:
        where.append(LibraryItem.classroom_id == classroom_id)
    for item in db.scalars(select(LibraryItem).where(*where)).all():
        found = media_key(db, item)
        if item.status in KEPT and found is not None and found[0] in kept:
            continue
        db.delete(item)
