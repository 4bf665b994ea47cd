"""Delivery lessons on demand (专递课堂 by video): a receiving room plays an approved
library item in class, at a time the scheduler sets.

Such a lesson is an ordinary lesson of kind ``delivery`` whose only room is the one that
plays (its ``lead`` in the tables: there is no live teacher), with a ``LessonPlayback``
row naming the item. The orchestrator joins the room with a ``PlaybackSource`` instead of
live media; the agent fetches the file, plays it on its screens and speakers as the
recorded room's teacher camera and sound, and reports how much it played. The lesson
counts as held when it played at least ``HELD_SHARE`` of the item (the quota reports).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from controller.common.errors import InvalidRequest, NotFound, RulesRefused, WrongState
from controller.db.models import (
    Classroom,
    Lesson,
    LessonPlayback,
    LessonReceiver,
    LibraryItem,
    Recording,
)
from controller.db.session import as_utc, utcnow
from controller.lessons.states import ACTIVE_STATES
from controller.library import store as library
from controller.timetable.loading import insert_lessons
from controller.timetable.planner import Candidate
from protocols.messages import PlaybackReport, PlaybackSource, RoomLabel, Subscription

KIND = "delivery"
HELD_SHARE = 0.9  # of the item's length played: the lesson counts as held
TAIL_S = 60.0  # a lesson without an end runs the item's length and this much more
MAX_LESSON_S = 4 * 3600.0
MEDIA_ROUTE = "/api/v1/agent/playback/{lesson}"


def media_route(lesson_id: str) -> str:
    """Where the playing room's agent fetches the item (with its upload token)."""
    return MEDIA_ROUTE.replace("{lesson}", lesson_id)


def _busy(db: Session, classroom_id: str, start: datetime, end: datetime) -> Lesson | None:
    """A lesson that holds the room over [start, end), if any."""
    receiving = select(LessonReceiver.lesson_id).where(LessonReceiver.classroom_id == classroom_id)
    return db.scalar(
        select(Lesson)
        .where(
            Lesson.state.in_([str(s) for s in ACTIVE_STATES]),
            Lesson.start_at < end,
            Lesson.end_at > start,
            or_(Lesson.lead_classroom_id == classroom_id, Lesson.id.in_(receiving)),
        )
        .limit(1)
    )


def assign(
    db: Session,
    item_id: int,
    classroom_id: str,
    start: datetime,
    end: datetime | None,
    actor: str,
) -> tuple[Lesson, LessonPlayback]:
    """Schedule ``classroom_id`` to play approved item ``item_id`` from ``start`` (until
    ``end``, or the item's length and a minute); refusals say what to change."""
    item = db.get(LibraryItem, item_id)
    if item is None:
        raise NotFound(f"library item {item_id} does not exist; GET /api/v1/library/items")
    if item.status != library.APPROVED:
        raise WrongState(
            f"library item {item_id} is {item.status}: only an approved item is played in "
            "class; ask a reviewer to approve it first"
        )
    found = library.media_key(db, item)
    if found is None:
        raise NotFound(f"library item {item_id}: its file is no longer stored")
    duration = float(found[1] or item.duration_s or 0.0)
    if db.get(Classroom, classroom_id) is None:
        raise NotFound(f"classroom {classroom_id!r} does not exist")
    if start.tzinfo is None or (end is not None and end.tzinfo is None):
        raise InvalidRequest("start and end must carry a time zone (e.g. 2026-03-02T08:00+08:00)")
    if end is None:
        end = start + timedelta(seconds=duration + TAIL_S)
    if end <= start:
        raise InvalidRequest(f"the lesson must end after it starts ({start} … {end})")
    if (end - start).total_seconds() > MAX_LESSON_S:
        raise InvalidRequest(f"a played lesson lasts at most {MAX_LESSON_S / 3600:.0f} h")
    if as_utc(end) <= utcnow():
        raise InvalidRequest(f"the lesson would end in the past ({end.isoformat()})")
    clash = _busy(db, classroom_id, start, end)
    if clash is not None:
        raise RulesRefused(
            [
                (
                    "room_busy",
                    f"{classroom_id} has lesson {clash.id} ({as_utc(clash.start_at):%H:%M}–"
                    f"{as_utc(clash.end_at):%H:%M} UTC) then; choose another time",
                )
            ]
        )
    title = f"{item.title}（点播）" if item.title else "点播课"
    candidate = Candidate(
        "this lesson", KIND, classroom_id, (), start, end, None, item.subject, title[:200]
    )
    # One-way: the room only plays; nothing is sent back to anyone.
    [lesson_id] = insert_lessons(db, [(candidate, {"one_way": True})], "scheduled")
    playback = LessonPlayback(
        lesson_id=lesson_id,
        item_id=item.id,
        assigned_by=actor[:64],
        assigned_at=utcnow(),
        duration_s=duration,
    )
    db.add(playback)
    db.commit()
    lesson = db.get(Lesson, lesson_id)
    assert lesson is not None
    return lesson, playback


def playback_of(db: Session, lesson_id: str) -> LessonPlayback | None:
    """The item a lesson plays, if it is a delivery lesson on demand."""
    return db.get(LessonPlayback, lesson_id)


def join_parts(
    db: Session, playback: LessonPlayback
) -> tuple[PlaybackSource, list[Subscription], list[RoomLabel]] | None:
    """What the playing room is told: the source to fetch, and the recorded room's
    teacher camera and sound as the subscriptions its screens and speakers follow."""
    item = db.get(LibraryItem, playback.item_id) if playback.item_id is not None else None
    if item is None:
        return None
    found = library.media_key(db, item)
    if found is None:
        return None
    sha = item.sha256 or ""
    if not sha and item.kind != "clip":
        sha = (
            db.scalar(
                select(Recording.sha256).where(
                    Recording.lesson_id == item.lesson_id,
                    Recording.classroom_id == item.classroom_id,
                    Recording.track == item.track,
                )
            )
            or ""
        )
    source = PlaybackSource(
        item_id=item.id,
        title=item.title[:200],
        route=media_route(playback.lesson_id),
        sha256=sha,
        duration_s=float(found[1] or 0.0),
    )
    origin = item.classroom_id
    subs = [
        Subscription(source_classroom=origin, track="teacher", kind="video", role="teacher"),
        Subscription(source_classroom=origin, track="mic", kind="audio", role="room"),
    ]
    room = db.get(Classroom, origin)
    labels = [
        RoomLabel(
            classroom_id=origin,
            school=(item.school or (room.school if room else ""))[:120],
            name=(room.name if room else origin)[:120],
        )
    ]
    return source, subs, labels


def record_report(db: Session, lesson_id: str, report: PlaybackReport) -> None:
    """Keep what the playing room reported."""
    playback = db.get(LessonPlayback, lesson_id)
    if playback is None:
        return
    playback.played_s = max(0.0, float(report.played_s))
    playback.duration_s = float(report.duration_s) or playback.duration_s
    if report.started_at is not None:
        playback.started_at = datetime.fromtimestamp(report.started_at, tz=UTC)
    playback.reported_at = utcnow()
    playback.error = report.error[:500]
    db.commit()


def share_played(playback: LessonPlayback) -> float | None:
    """The share of the item played (None: not reported yet)."""
    if playback.played_s is None:
        return None
    if not playback.duration_s:
        return 1.0 if playback.played_s > 0 else 0.0
    return min(1.0, playback.played_s / playback.duration_s)


def played_shares(db: Session, lesson_ids: Any) -> dict[str, float | None]:
    """Each delivery-on-demand lesson among ``lesson_ids`` (ids, or a select of them):
    the share it played."""
    rows = db.scalars(select(LessonPlayback).where(LessonPlayback.lesson_id.in_(lesson_ids)))
    return {p.lesson_id: share_played(p) for p in rows}


def playback_document(playback: LessonPlayback) -> dict[str, Any]:
    """The API's view of a lesson's playback."""
    share = share_played(playback)
    return {
        "lesson": playback.lesson_id,
        "item": playback.item_id,
        "assigned_by": playback.assigned_by,
        "assigned_at": as_utc(playback.assigned_at).isoformat(),
        "duration_s": playback.duration_s,
        "played_s": playback.played_s,
        "share_played": None if share is None else round(share, 3),
        "held": share is not None and share >= HELD_SHARE,
        "started_at": as_utc(playback.started_at).isoformat() if playback.started_at else None,
        "reported_at": as_utc(playback.reported_at).isoformat() if playback.reported_at else None,
        "error": playback.error,
    }
