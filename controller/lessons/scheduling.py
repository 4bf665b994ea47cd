"""Scheduling one-off lessons, with the checks a scheduler expects answered up front."""

from __future__ import annotations

import pathlib
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.agents.registry import get_classroom
from controller.common.errors import InvalidRequest, NotFound, RulesRefused, WrongState
from controller.db.models import Lesson, LessonEvent
from controller.db.session import as_utc, utcnow
from controller.lessons.states import LESSON_STATES, allowed
from controller.timetable.loading import insert_lessons, planner_for
from controller.timetable.planner import Candidate, Placement


def schedule_lesson(
    db: Session,
    lead: str,
    receivers: list[str],
    start: datetime,
    end: datetime,
    title: str = "",
    kind: str = "synchronous",
    teacher: str | None = None,
    subject: str = "",
) -> Lesson:
    """Create a lesson after the timetable's rules (conflicts, receivers, bandwidth,
    capability) have found nothing; otherwise ``RulesRefused`` with every reason."""
    lesson, _ = schedule_placed(db, lead, receivers, start, end, title, kind, teacher, subject)
    return lesson


def schedule_placed(
    db: Session,
    lead: str,
    receivers: list[str],
    start: datetime,
    end: datetime,
    title: str = "",
    kind: str = "synchronous",
    teacher: str | None = None,
    subject: str = "",
    assistants: tuple[tuple[str, str], ...] = (),
) -> tuple[Lesson, Placement]:
    """As ``schedule_lesson``, also answering the ladder rung the lesson was placed on
    (and why, when below the top); a lowered placement is kept in the lesson's events."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("start and end must carry a time zone (e.g. 2026-03-02T08:00+08:00)")
    if end <= start:
        raise InvalidRequest(
            f"lesson must end after it starts (start {start.isoformat()}, end {end.isoformat()})"
        )
    for cid in [lead, *receivers]:
        get_classroom(db, cid)  # NotFound names the missing one
    candidate = Candidate(
        "this lesson",
        kind,
        lead,
        tuple(receivers),
        start,
        end,
        teacher,
        subject,
        title,
        assistants=assistants,
    )
    placement = planner_for(db, (start, end)).place(candidate)
    if placement.problems:
        raise RulesRefused([(p.code, p.message) for p in placement.problems])
    [lesson_id] = insert_lessons(db, [(placement.candidate, {})], "scheduled")
    if placement.lowered:
        log_event(db, lesson_id, placement.reason)
    lesson = db.get(Lesson, lesson_id)
    assert lesson is not None
    return lesson, placement


def get_lesson(db: Session, lesson_id: str) -> Lesson:
    """A lesson by id, or ``NotFound``."""
    lesson = db.get(Lesson, lesson_id)
    if lesson is None:
        raise NotFound(
            f"lesson {lesson_id!r} does not exist; "
            "list lessons with 'classroom-controller lesson list'"
        )
    return lesson


def transition(db: Session, lesson: Lesson, to_state: str, detail: str = "") -> None:
    """Move a lesson to a new state the state machine allows, and log the transition;
    ``WrongState`` for a move it does not allow."""
    if to_state not in LESSON_STATES:
        raise InvalidRequest(f"unknown lesson state {to_state!r}")
    if not allowed(lesson.state, to_state):
        raise WrongState(
            f"lesson {lesson.id} is {lesson.state}: it cannot become {to_state} "
            f"({detail or 'no reason given'}); see controller/lessons/states.py"
        )
    db.add(
        LessonEvent(
            lesson_id=lesson.id,
            at=utcnow(),
            from_state=lesson.state,
            to_state=to_state,
            detail=detail,
        )
    )
    lesson.state = to_state
    db.commit()


def log_event(db: Session, lesson_id: str, detail: str) -> None:
    """Log a notable event that is not a state change."""
    db.add(LessonEvent(lesson_id=lesson_id, at=utcnow(), detail=detail))
    db.commit()


def lesson_document(
    db: Session, lesson: Lesson, local_root: pathlib.Path | None = None
) -> dict[str, object]:
    """The JSON view of a lesson for the API and CLI.

    Recordings carry their storage key and playback URL, and their file path when
    storage is a local directory (``local_root``).
    """
    from controller.db.models import LessonEvent as Ev
    from controller.db.models import Recording

    events = db.scalars(select(Ev).where(Ev.lesson_id == lesson.id).order_by(Ev.id)).all()
    recs = db.scalars(
        select(Recording).where(Recording.lesson_id == lesson.id).order_by(Recording.id)
    ).all()
    return {
        "id": lesson.id,
        "kind": lesson.kind,
        "title": lesson.title,
        "lead": lesson.lead_classroom_id,
        "receivers": [r.classroom_id for r in lesson.receivers],
        "assistants": {
            r.classroom_id: r.assistant_teacher_id
            for r in lesson.receivers
            if r.assistant_teacher_id
        },
        "start_at": as_utc(lesson.start_at).isoformat(),
        "end_at": as_utc(lesson.end_at).isoformat(),
        "state": lesson.state,
        "rung": lesson.rung,
        "error": lesson.error,
        "reports": lesson.reports,
        "recordings": [
            {
                "classroom": r.classroom_id,
                "track": r.track,
                "kind": r.kind,
                "key": r.path,
                "path": str(local_root / r.path) if local_root is not None else None,
                "url": f"/api/v1/recordings/{lesson.id}/{r.classroom_id}/{r.track}.mp4",
                "codec": r.codec,
                "duration_s": r.duration_s,
                "segments": r.segments,
                "sha256": r.sha256,
            }
            for r in recs
        ],
        "events": [
            {
                "at": as_utc(e.at).isoformat(),
                "from": e.from_state,
                "to": e.to_state,
                "detail": e.detail,
            }
            for e in events
        ],
    }
