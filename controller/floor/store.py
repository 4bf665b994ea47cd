"""The floor of each lesson in the database: read it, change it (validated, ``seq`` raised
by one, logged as a lesson event), and the room labels the agents show."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.common.errors import NotInLesson, WrongState
from controller.db.models import Classroom, Lesson, LessonEvent, LessonFloor, School
from controller.db.session import utcnow
from controller.lessons.scheduling import get_lesson
from protocols.messages import FloorState, RoomLabel

FLOOR_STATES = ("preparing", "live")
MAX_MUTED = 64
DEFAULT_DUCK_DB = -18.0
_ATTEMPTS = 5  # changes racing on one lesson: each retries on a fresh seq


def floor_state(db: Session, lesson_id: str) -> FloorState:
    """The lesson's floor now; seq 0 and nobody speaking when it was never changed."""
    row = db.get(LessonFloor, lesson_id)
    if row is None:
        return FloorState(lesson_id=lesson_id, seq=0, duck_db=DEFAULT_DUCK_DB)
    return FloorState(
        lesson_id=lesson_id,
        seq=row.seq,
        speaking=row.speaking,
        muted=list(row.muted or []),
        duck_db=row.duck_db,
        by=row.changed_by,
    )


def receiving_rooms(lesson: Lesson) -> list[str]:
    """The lesson's receiving classrooms, in the order the lead's join subscribes to them."""
    return [c for c in lesson.classroom_ids if c != lesson.lead_classroom_id]


def check_change(lesson: Lesson, speaking: str | None, muted: list[str]) -> list[str]:
    """``muted`` without repeats, or ``WrongState``/``NotInLesson`` naming what is wrong."""
    if lesson.state not in FLOOR_STATES:
        raise WrongState(
            f"lesson {lesson.id!r} is {lesson.state}; the floor can be given only while it "
            f"is {' or '.join(FLOOR_STATES)}"
        )
    if lesson.one_way:
        raise WrongState(
            f"lesson {lesson.id!r} is broadcast only: its receiving rooms send no sound, so "
            "there is no floor to give (switch off broadcast-only first)"
        )
    valid = receiving_rooms(lesson)
    unique = list(dict.fromkeys(muted))
    if len(unique) > MAX_MUTED:
        raise NotInLesson(f"muted names {len(unique)} classrooms; at most {MAX_MUTED}")
    for name, cid in [("speaking", speaking), *(("muted", m) for m in unique)]:
        if cid is not None and cid not in valid:
            raise NotInLesson(
                f"{name}: {cid!r} is not a receiving classroom of lesson {lesson.id!r}; "
                f"its receiving classrooms are {', '.join(valid) or 'none'}"
            )
    return unique


def _describe(state: FloorState) -> str:
    muted = ", ".join(state.muted) or "none"
    return (
        f"floor {state.seq}: {state.speaking or 'nobody'} has the floor; muted {muted} "
        f"(by {state.by})"
    )


def set_floor(
    db: Session, lesson_id: str, speaking: str | None, muted: list[str], by: str
) -> FloorState:
    """Give the floor to ``speaking`` (None: nobody) with ``muted``; answers the new state.

    ``NotFound``, ``WrongState`` or ``NotInLesson`` when the change is refused. The seq is
    raised with a compare-and-set, so two controllers (or two requests) racing on one
    lesson each get their own number.
    """
    lesson = get_lesson(db, lesson_id)
    muted = check_change(lesson, speaking, muted)
    for _ in range(_ATTEMPTS):
        now = utcnow()
        row = db.get(LessonFloor, lesson_id, populate_existing=True)
        seq = (row.seq if row is not None else 0) + 1
        state = FloorState(
            lesson_id=lesson_id,
            seq=seq,
            speaking=speaking,
            muted=muted,
            duck_db=row.duck_db if row is not None else DEFAULT_DUCK_DB,
            by=by[:120],
        )
        values = {
            "seq": seq,
            "speaking": speaking,
            "muted": muted,
            "changed_by": state.by,
            "changed_at": now,
        }
        if row is None:
            db.add(LessonFloor(lesson_id=lesson_id, duck_db=state.duck_db, **values))
        else:
            done = db.execute(
                update(LessonFloor)
                .where(LessonFloor.lesson_id == lesson_id, LessonFloor.seq == seq - 1)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                db.rollback()
                continue
        db.add(LessonEvent(lesson_id=lesson_id, at=now, detail=_describe(state)))
        try:
            db.commit()
        except IntegrityError:  # another change created the row first
            db.rollback()
            continue
        return state
    raise WrongState(
        f"the floor of lesson {lesson_id!r} is changing too fast to apply this change; try again"
    )


def room_labels(db: Session, classroom_ids: list[str]) -> list[RoomLabel]:
    """School and room names of ``classroom_ids``, in that order, for the agents' tiles."""
    rooms = {
        c.id: c for c in db.scalars(select(Classroom).where(Classroom.id.in_(classroom_ids))).all()
    }
    schools = {
        s.id: s.name
        for s in db.scalars(
            select(School).where(School.id.in_({r.school for r in rooms.values()}))
        ).all()
    }
    labels = []
    for cid in classroom_ids:
        room = rooms.get(cid)
        school = schools.get(room.school, room.school) if room is not None else ""
        labels.append(
            RoomLabel(
                classroom_id=cid,
                school=school[:120],
                name=(room.name if room is not None else cid)[:120],
            )
        )
    return labels
