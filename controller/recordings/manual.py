"""Recordings a technician made by hand (``classroom-agent record start``).

They are not on the timetable, so the controller catalogues each one as a lesson of kind
``manual`` led by the classroom that uploads it, the first time an upload names its id.
Its end is set from the manifest when the recording is complete.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from controller.common.errors import NotYours
from controller.db.models import Classroom, Lesson
from controller.db.session import as_utc, utcnow
from controller.lessons.scheduling import get_lesson
from protocols.lesson_ids import manual_start

MANUAL_KIND = "manual"


def lesson_for_upload(db: Session, lesson_id: str, classroom_id: str) -> Lesson:
    """The lesson an upload belongs to, cataloguing a manual recording on first sight.

    ``NotFound`` for an unknown scheduled lesson; ``NotYours`` for a lesson the classroom
    takes no part in, or another classroom's manual recording.
    """
    lesson = db.get(Lesson, lesson_id)
    start = manual_start(lesson_id)
    if lesson is not None:
        lead = lesson.lead_classroom_id
        if lesson.kind == MANUAL_KIND and lead != classroom_id:
            raise NotYours(
                f"lesson {lesson_id!r} was recorded by hand in classroom {lead!r}; only "
                "that classroom may upload to it"
            )
        if classroom_id not in lesson.classroom_ids:
            receiving = ", ".join(repr(r.classroom_id) for r in lesson.receivers) or "none"
            raise NotYours(
                f"classroom {classroom_id!r} takes no part in lesson {lesson_id!r} (lead "
                f"{lead!r}, receiving {receiving}); it may upload only its own lessons' "
                "recordings"
            )
        return lesson
    if start is None:
        return get_lesson(db, lesson_id)  # raises NotFound with the hint
    room = db.get(Classroom, classroom_id)
    began = datetime.fromtimestamp(start, UTC)
    lesson = Lesson(
        id=lesson_id,
        kind=MANUAL_KIND,
        title=f"recorded by hand in {room.name if room else classroom_id}",
        lead_classroom_id=classroom_id,
        start_at=began,
        end_at=began,
        state="recorded",
        created_at=utcnow(),
    )
    db.add(lesson)
    db.flush()
    return lesson


def extend_to(lesson: Lesson, ended_at: float) -> None:
    """A manual recording lasts as long as its manifest says."""
    end = datetime.fromtimestamp(ended_at, UTC)
    if lesson.kind == MANUAL_KIND and end > as_utc(lesson.end_at):
        lesson.end_at = end
