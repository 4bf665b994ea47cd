"""Searching the recording catalogue: by school, teacher, subject, lesson kind and dates.

One row per stitched track file, newest lesson first, with its coverage and gaps from
the classroom's manifest and whether it is published to the resource library (or waiting
for review there). The
filters use indexed columns (classroom.school, lesson.teacher_id/subject/kind/start_at,
recording.lesson_id/classroom_id), and a page is one query plus one count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from controller.common.errors import InvalidRequest
from controller.db.models import (
    Classroom,
    Lesson,
    LibraryItem,
    PublishedRecording,
    Recording,
    RecordingManifest,
)
from controller.db.session import as_utc

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def parse_moment(name: str, value: str | None, end: bool = False) -> datetime | None:
    """A query bound: an ISO time (with offset; naive means UTC), or an ISO date — the
    start of that UTC day, or for ``end`` the start of the next (so ``to`` includes it)."""
    if not value:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"query {name}={value!r} is neither a date (2026-03-02) nor a time "
            "(2026-03-02T00:00:00+08:00)"
        ) from None
    return as_utc(moment).astimezone(UTC)


def _int(name: str, value: str | None, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise InvalidRequest(f"query {name}={value!r} is not an integer") from None
    if not lo <= n <= hi:
        raise InvalidRequest(f"query {name}={n} is out of range [{lo}, {hi}]")
    return n


@dataclass(frozen=True)
class RecordingQuery:
    """The search filters and the page asked for (empty strings: no filter)."""

    school: str = ""
    teacher: str = ""
    subject: str = ""
    kind: str = ""
    start: datetime | None = None  # lessons starting at or after
    end: datetime | None = None  # lessons starting before
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    @classmethod
    def parse(cls, query: Any) -> RecordingQuery:
        """From a request's query string (a mapping of str to str)."""
        start = parse_moment("from", query.get("from"))
        end = parse_moment("to", query.get("to"), end=True)
        if start is not None and end is not None and end <= start:
            raise InvalidRequest("query 'to' must be after 'from'")
        return cls(
            school=query.get("school", "").strip(),
            teacher=query.get("teacher", "").strip(),
            subject=query.get("subject", "").strip(),
            kind=query.get("kind", "").strip(),
            start=start,
            end=end,
            limit=_int("limit", query.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT),
            offset=_int("offset", query.get("offset"), 0, 0, 10**9),
        )

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE terms of these filters (on Lesson and the recording's Classroom)."""
        out: list[ColumnElement[bool]] = []
        if self.school:
            out.append(Classroom.school == self.school)
        if self.teacher:
            out.append(Lesson.teacher_id == self.teacher)
        if self.subject:
            out.append(Lesson.subject == self.subject)
        if self.kind:
            out.append(Lesson.kind == self.kind)
        if self.start is not None:
            out.append(Lesson.start_at >= self.start)
        if self.end is not None:
            out.append(Lesson.start_at < self.end)
        return out


def playback_url(lesson_id: str, classroom_id: str, track: str) -> str:
    """Where the stitched file plays (byte ranges) and downloads from."""
    return f"/api/v1/recordings/{lesson_id}/{classroom_id}/{track}.mp4"


def track_coverage(cover: dict[str, Any] | None, track: str) -> tuple[float | None, int | None]:
    """(coverage %, number of gaps) of ``track`` in a manifest's coverage document."""
    if not cover:
        return None, None
    for entry in cover.get("tracks", []):
        if entry.get("key") == track:
            return round(100 * float(entry.get("ratio", 0.0)), 1), len(entry.get("gaps", []))
    return None, None


def search(db: Session, q: RecordingQuery, only_school: str | None = None) -> dict[str, Any]:
    """One page of recordings matching ``q``, with the total count; ``only_school``
    limits it to one school's classrooms (the caller's scope)."""
    where = q.conditions()
    if only_school is not None:
        where.append(Classroom.school == only_school)
    base = (
        select(Recording.id)
        .join(Lesson, Lesson.id == Recording.lesson_id)
        .join(Classroom, Classroom.id == Recording.classroom_id)
        .where(*where)
    )
    total = db.scalar(select(func.count()).select_from(base.subquery())) or 0
    stmt = (
        select(
            Recording,
            Lesson,
            Classroom.name,
            Classroom.school,
            RecordingManifest.coverage,
            PublishedRecording.published_at,
        )
        .join(Lesson, Lesson.id == Recording.lesson_id)
        .join(Classroom, Classroom.id == Recording.classroom_id)
        .outerjoin(
            RecordingManifest,
            and_(
                RecordingManifest.lesson_id == Recording.lesson_id,
                RecordingManifest.classroom_id == Recording.classroom_id,
            ),
        )
        .outerjoin(
            PublishedRecording,
            and_(
                PublishedRecording.lesson_id == Recording.lesson_id,
                PublishedRecording.classroom_id == Recording.classroom_id,
                PublishedRecording.track == Recording.track,
            ),
        )
        .where(*where)
        .order_by(Lesson.start_at.desc(), Recording.classroom_id, Recording.track)
    )
    rows = db.execute(stmt.limit(q.limit).offset(q.offset)).all()
    asked = _library_requests(db, {r[0].lesson_id for r in rows})
    out = []
    for rec, lesson, room_name, school, cover, published_at in rows:
        pct, gaps = track_coverage(cover, rec.track)
        out.append(
            {
                "lesson": lesson.id,
                "title": lesson.title,
                "kind": lesson.kind,
                "subject": lesson.subject,
                "teacher": lesson.teacher_id,
                "start_at": as_utc(lesson.start_at).isoformat(),
                "end_at": as_utc(lesson.end_at).isoformat(),
                "classroom": rec.classroom_id,
                "classroom_name": room_name,
                "school": school,
                "track": rec.track,
                "media": rec.kind,
                "duration_s": round(rec.duration_s, 3),
                "coverage_pct": pct,
                "gaps": gaps,
                "url": playback_url(lesson.id, rec.classroom_id, rec.track),
                "published": published_at is not None,
                "published_at": as_utc(published_at).isoformat() if published_at else None,
                "library_pending": (rec.lesson_id, rec.classroom_id, rec.track) in asked,
            }
        )
    return {"total": total, "limit": q.limit, "offset": q.offset, "recordings": out}


def _library_requests(db: Session, lessons: set[str]) -> set[tuple[str, str, str]]:
    """(lesson, classroom, track) of those lessons' recordings awaiting library review."""
    if not lessons:
        return set()
    rows = db.execute(
        select(LibraryItem.lesson_id, LibraryItem.classroom_id, LibraryItem.track).where(
            LibraryItem.lesson_id.in_(lessons),
            LibraryItem.kind == "recording",
            LibraryItem.status == "pending",
        )
    ).all()
    return {(a, b, c) for a, b, c in rows}


def publish(
    db: Session, lesson_id: str, classroom_id: str, track: str, actor: str
) -> dict[str, Any]:
    """Ask to publish a stitched recording to the resource library, with the lesson's own
    metadata: a pending item until a reviewer approves it (``controller.library``).
    Asking again returns the item already pending or approved."""
    from controller.library.metadata import ItemMetadata
    from controller.library.store import (
        APPROVED,
        find_recording,
        item_document,
        lesson_defaults,
        request_publish,
    )

    rec = find_recording(db, lesson_id, classroom_id, track)
    item, _new = request_publish(db, rec, ItemMetadata.parse({}, lesson_defaults(db, rec)), actor)
    return {
        **item_document(item),
        "published": item.status == APPROVED,
        "url": playback_url(lesson_id, classroom_id, track),
    }
