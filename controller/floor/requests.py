"""A lead classroom's own floor keys: its agent sends ``FloorRequest`` and the controller
applies it as a change by ``keys:<classroom>``. Only the lesson's lead classroom may."""

from __future__ import annotations

from sqlalchemy.orm import Session

from controller.common.errors import NotLead
from controller.floor.store import set_floor
from controller.lessons.scheduling import get_lesson
from protocols.messages import FloorRequest, FloorState


def keys_change(db: Session, classroom_id: str, request: FloorRequest) -> FloorState:
    """Apply ``request`` from ``classroom_id`` (the identity the hub authenticated).

    ``NotLead`` when it is not the lesson's lead classroom; ``NotFound``,
    ``WrongState`` or ``NotInLesson`` as for a console change.
    """
    lesson = get_lesson(db, request.lesson_id)
    if classroom_id != lesson.lead_classroom_id:
        raise NotLead(
            f"{classroom_id!r} is not the lead classroom of lesson {lesson.id!r} "
            f"({lesson.lead_classroom_id!r} is); only the lead's keys give the floor"
        )
    return set_floor(db, lesson.id, request.speaking, list(request.muted), f"keys:{classroom_id}")
