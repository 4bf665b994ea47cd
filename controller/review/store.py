"""Notes and scores of lessons, and the county's rubric, in the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.common.body_fields import InvalidRequestField
from controller.common.errors import InvalidRequest, WrongState
from controller.db.models import Lesson, LessonNote, LessonScore, ReviewRubric
from controller.db.session import as_utc, utcnow
from controller.review.rubric import DEFAULT, Criterion, parse_criteria

MAX_NOTE_CHARS = 2000
MAX_COMMENT_CHARS = 4000
MAX_NOTES_PER_LESSON = 500
# A lesson can be reviewed once it has begun: live, or afterwards on its recording (also
# "failed": the controller missed it, but the agents recorded it from their schedule).
REVIEWABLE = ("preparing", "live", "ending", "recorded", "uploaded", "failed")
AFTER_END_S = 300.0  # a note may point a little past the bell (the recording runs on)


def rubric(db: Session) -> tuple[Criterion, ...]:
    """The county's rubric, or the default."""
    row = db.get(ReviewRubric, 1)
    return parse_criteria(row.criteria) if row is not None else DEFAULT


def set_rubric(db: Session, raw: Any, by: str) -> tuple[Criterion, ...]:
    """Replace the rubric (scores already given keep the rubric they were given against)."""
    criteria = parse_criteria(raw)
    row = db.get(ReviewRubric, 1) or ReviewRubric(id=1)
    row.criteria = [c.document() for c in criteria]
    row.updated_by = by
    row.updated_at = utcnow()
    db.add(row)
    db.commit()
    return criteria


def _reviewable(lesson: Lesson) -> None:
    if lesson.state not in REVIEWABLE:
        raise WrongState(
            f"lesson {lesson.id} is {lesson.state}; notes and scores are for a lesson that "
            "has begun (live, or its recording afterwards)"
        )


def add_note(db: Session, lesson: Lesson, author: str, at_s: float, text: str) -> LessonNote:
    """Pin a note to ``at_s`` seconds into the lesson."""
    _reviewable(lesson)
    length = (as_utc(lesson.end_at) - as_utc(lesson.start_at)).total_seconds()
    if not 0 <= at_s <= length + AFTER_END_S:
        raise InvalidRequestField(
            "at_s", at_s, f"seconds from the lesson's start, 0 to {length + AFTER_END_S:.0f}"
        )
    text = text.strip()
    if not 0 < len(text) <= MAX_NOTE_CHARS or "\x00" in text:
        raise InvalidRequestField("text", text[:40], f"a note of 1-{MAX_NOTE_CHARS} characters")
    count = len(db.scalars(select(LessonNote.id).where(LessonNote.lesson_id == lesson.id)).all())
    if count >= MAX_NOTES_PER_LESSON:
        raise InvalidRequest(f"lesson {lesson.id} already has {count} notes, the most it takes")
    note = LessonNote(
        lesson_id=lesson.id, author=author, at_s=round(at_s, 1), text=text, created_at=utcnow()
    )
    db.add(note)
    db.commit()
    return note


def set_score(db: Session, lesson: Lesson, author: str, points: Any, comment: str) -> LessonScore:
    """Score the lesson against the rubric (replacing the author's earlier score)."""
    _reviewable(lesson)
    criteria = rubric(db)
    if not isinstance(points, dict):
        raise InvalidRequestField("scores", points, "an object of criterion id → points")
    ids = {c.id for c in criteria}
    unknown = sorted(set(points) - ids)
    missing = sorted(ids - set(points))
    if unknown or missing:
        raise InvalidRequest(
            f"scores must name every criterion of the rubric ({', '.join(c.id for c in criteria)})"
            f"; unknown: {', '.join(unknown) or '-'}; missing: {', '.join(missing) or '-'}"
        )
    for c in criteria:
        value = points[c.id]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= c.points:
            raise InvalidRequestField(f"scores.{c.id}", value, f"a whole number 0-{c.points}")
    if len(comment) > MAX_COMMENT_CHARS or "\x00" in comment:
        raise InvalidRequestField(
            "comment", comment[:40], f"at most {MAX_COMMENT_CHARS} characters"
        )
    row = db.scalar(
        select(LessonScore).where(LessonScore.lesson_id == lesson.id, LessonScore.author == author)
    ) or LessonScore(lesson_id=lesson.id, author=author)
    row.rubric = {"criteria": [c.document() for c in criteria]}
    row.scores = {c.id: int(points[c.id]) for c in criteria}
    row.total = sum(row.scores.values())
    row.out_of = sum(c.points for c in criteria)
    row.comment = comment.strip()
    row.scored_at = utcnow()
    db.add(row)
    db.commit()
    return row


def review_document(db: Session, lesson: Lesson) -> dict[str, Any]:
    """A lesson's notes (by moment), scores and the rubric, with the mean score in %."""
    notes = db.scalars(
        select(LessonNote)
        .where(LessonNote.lesson_id == lesson.id)
        .order_by(LessonNote.at_s, LessonNote.id)
    ).all()
    scores = db.scalars(
        select(LessonScore).where(LessonScore.lesson_id == lesson.id).order_by(LessonScore.id)
    ).all()
    shares = [s.total / s.out_of for s in scores if s.out_of]
    return {
        "lesson_id": lesson.id,
        "state": lesson.state,
        "start_at": as_utc(lesson.start_at).isoformat(),
        "end_at": as_utc(lesson.end_at).isoformat(),
        "notes": [
            {
                "id": n.id,
                "author": n.author,
                "at_s": n.at_s,
                "text": n.text,
                "created_at": as_utc(n.created_at).isoformat(),
            }
            for n in notes
        ],
        "scores": [
            {
                "author": s.author,
                "scores": s.scores,
                "total": s.total,
                "out_of": s.out_of,
                "comment": s.comment,
                "scored_at": as_utc(s.scored_at).isoformat(),
            }
            for s in scores
        ],
        "mean_pct": round(100 * sum(shares) / len(shares), 1) if shares else None,
        "rubric": [c.document() for c in rubric(db)],
    }
