"""Manual overrides a scheduler can make to a lesson, each checked and logged.

- end early (now), or extend by some minutes (checked against the rooms' next lessons);
- swap the lead classroom (before the lesson starts);
- switch to broadcast only (线下线上瞬时切换): receivers stop sending, at once if live;
- cancel (before it starts).

The orchestrator notices new times or a switch to broadcast only on its next tick and
re-joins the agents with the new terms.
"""

from __future__ import annotations

from datetime import UTC, timedelta

from sqlalchemy.orm import Session

from controller.common.errors import InvalidRequest, RulesRefused
from controller.db.models import Lesson, LessonReceiver
from controller.db.session import as_utc, utcnow
from controller.lessons.scheduling import get_lesson, log_event, transition
from controller.timetable.loading import planner_for
from controller.timetable.planner import Candidate, Placement

RUNNING = ("preparing", "live")
ACTIONS = ("end_now", "extend", "swap_lead", "broadcast_only", "cancel")


def _candidate(lesson: Lesson, **change: object) -> Candidate:
    fields: dict[str, object] = {
        "ref": "the changed lesson",
        "kind": lesson.kind,
        "lead": lesson.lead_classroom_id,
        "receivers": tuple(r.classroom_id for r in lesson.receivers),
        "start": as_utc(lesson.start_at),
        "end": as_utc(lesson.end_at),
        "teacher": lesson.teacher_id,
        "subject": lesson.subject,
        "assistants": tuple(
            (r.classroom_id, r.assistant_teacher_id)
            for r in lesson.receivers
            if r.assistant_teacher_id
        ),
    }
    fields.update(change)
    return Candidate(**fields)  # type: ignore[arg-type]


def _check(db: Session, lesson: Lesson, cand: Candidate) -> Placement:
    planner = planner_for(db, (cand.start, cand.end), skip=[lesson.id])
    placement = planner.place(cand)
    if placement.problems:
        raise RulesRefused([(p.code, p.message) for p in placement.problems])
    return placement


def _replace_rung(db: Session, lesson: Lesson, placement: Placement) -> None:
    """Keep the rung the changed lesson fits on, and say why when it changes."""
    rung = placement.candidate.rung
    if rung != lesson.rung:
        lesson.rung = rung
        db.commit()
        log_event(db, lesson.id, placement.reason or f"placed on rung {rung}")


def override(
    db: Session,
    lesson_id: str,
    action: str,
    actor: str,
    minutes: float = 0.0,
    lead: str = "",
) -> Lesson:
    """Apply one override; ``InvalidRequest`` says why it cannot be done."""
    lesson = get_lesson(db, lesson_id)
    now = utcnow()
    if action == "end_now":
        if lesson.state not in RUNNING:
            raise InvalidRequest(
                f"lesson {lesson_id} is {lesson.state}; only a running lesson ends early"
            )
        if as_utc(lesson.start_at) > now:  # still preparing: it starts and ends at once
            lesson.start_at = (now - timedelta(seconds=1)).astimezone(UTC)
        lesson.end_at = now.astimezone(UTC)
        db.commit()
        log_event(db, lesson.id, f"override by {actor}: ended early")
    elif action == "extend":
        if lesson.state not in ("scheduled", *RUNNING):
            raise InvalidRequest(
                f"lesson {lesson_id} is {lesson.state}; it can no longer be extended"
            )
        if not 0 < minutes <= 180:
            raise InvalidRequest("extend by 1 to 180 minutes")
        new_end = as_utc(lesson.end_at) + timedelta(minutes=minutes)
        placement = _check(db, lesson, _candidate(lesson, end=new_end))
        lesson.end_at = new_end
        db.commit()
        log_event(db, lesson.id, f"override by {actor}: extended by {minutes:g} min")
        _replace_rung(db, lesson, placement)
    elif action == "swap_lead":
        if lesson.state != "scheduled":
            raise InvalidRequest(
                f"lesson {lesson_id} is {lesson.state}; the lead can be swapped only before "
                "it starts (end it and schedule the rest with the new lead)"
            )
        old = lesson.lead_classroom_id
        receivers = [r.classroom_id for r in lesson.receivers]
        if not lead or lead == old:
            raise InvalidRequest("give the new lead classroom (--lead)")
        new_receivers = [old if r == lead else r for r in receivers]
        placement = _check(
            db, lesson, _candidate(lesson, lead=lead, receivers=tuple(new_receivers))
        )
        lesson.lead_classroom_id = lead
        lesson.receivers = [LessonReceiver(classroom_id=r) for r in new_receivers]
        db.commit()
        log_event(db, lesson.id, f"override by {actor}: lead {old} → {lead}")
        _replace_rung(db, lesson, placement)
    elif action == "broadcast_only":
        if lesson.state not in ("scheduled", *RUNNING):
            raise InvalidRequest(f"lesson {lesson_id} is {lesson.state}; nothing to switch")
        if lesson.one_way:
            raise InvalidRequest(f"lesson {lesson_id} is already broadcast only")
        lesson.one_way = True
        db.commit()
        log_event(db, lesson.id, f"override by {actor}: switched to broadcast only")
    elif action == "cancel":
        if lesson.state != "scheduled":
            raise InvalidRequest(
                f"lesson {lesson_id} is {lesson.state}; only a lesson not yet started can be "
                "cancelled (end a running one early instead)"
            )
        transition(db, lesson, "cancelled", f"cancelled by {actor}")
    else:
        raise InvalidRequest(f"unknown override {action!r}; use one of {', '.join(ACTIONS)}")
    return lesson
