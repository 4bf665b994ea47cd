"""Talk timelines and S-T figures of lessons in the database.

A lesson report that carries a timeline stores it (one row per classroom, replaced if the
agent sends it again) and makes the lesson's figures afresh from every room's timeline so
far, in the report's own transaction (the lesson row is locked there, so two rooms
reporting together cannot both miss each other's timeline).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.analytics.st import DEFAULT_INTERVAL_S, RoomTimeline, StAnalysis, analyse, merge
from controller.db.models import Lesson, LessonAnalysis, LessonTalk
from controller.db.session import as_utc, utcnow
from protocols.messages import TalkTimeline


def lesson_length_s(lesson: Lesson) -> int:
    """The lesson's scheduled length in whole seconds."""
    return max(0, round((as_utc(lesson.end_at) - as_utc(lesson.start_at)).total_seconds()))


def room_timelines(db: Session, lesson: Lesson) -> list[RoomTimeline]:
    """Every timeline the lesson's rooms sent, placed on the lesson's clock."""
    start = as_utc(lesson.start_at).timestamp()
    rows = db.scalars(
        select(LessonTalk)
        .where(LessonTalk.lesson_id == lesson.id)
        .order_by(LessonTalk.classroom_id)
    )
    return [
        RoomTimeline(
            classroom_id=row.classroom_id,
            lead=row.classroom_id == lesson.lead_classroom_id,
            offset_s=round(row.start - start),
            codes=row.codes,
        )
        for row in rows
    ]


def analyse_lesson(db: Session, lesson: Lesson, interval_s: int = DEFAULT_INTERVAL_S) -> StAnalysis:
    """The lesson's S-T figures from its stored timelines, coded every ``interval_s``."""
    return analyse(room_timelines(db, lesson), lesson_length_s(lesson), interval_s)


def store_talk(db: Session, lesson: Lesson, classroom_id: str, talk: TalkTimeline) -> StAnalysis:
    """Keep one room's timeline and make the lesson's figures afresh (the caller commits)."""
    now = utcnow()
    row = db.get(LessonTalk, (lesson.id, classroom_id))
    if row is None:
        row = LessonTalk(lesson_id=lesson.id, classroom_id=classroom_id)
        db.add(row)
    row.start, row.codes, row.received_at = talk.start, talk.codes, now
    db.flush()
    result = analyse_lesson(db, lesson)
    figures = db.get(LessonAnalysis, lesson.id) or LessonAnalysis(lesson_id=lesson.id)
    figures.interval_s = result.interval_s
    figures.samples = result.samples
    figures.rt, figures.ch, figures.teaching_type = result.rt, result.ch, result.teaching_type
    figures.teacher_talk_s = result.teacher_talk_s
    figures.student_talk_s = result.student_talk_s
    figures.rooms = [
        {"classroom": r.classroom_id, "turns": r.turns, "talk_s": r.talk_s} for r in result.rooms
    ]
    figures.computed_at = now
    db.add(figures)
    return result


def analysis_document(db: Session, lesson: Lesson, interval_s: int) -> dict[str, Any]:
    """What the console shows of a lesson: the figures, the samples (the S-T curve), the
    merged seconds, and which rooms sent a timeline."""
    rooms = room_timelines(db, lesson)
    length = lesson_length_s(lesson)
    result = analyse(rooms, length, interval_s)
    return {
        "lesson": lesson.id,
        "lead": lesson.lead_classroom_id,
        "receivers": [r.classroom_id for r in lesson.receivers],
        "length_s": length,
        "reported": [r.classroom_id for r in rooms],
        "seconds": merge(rooms, length),
        **result.document(),
    }
