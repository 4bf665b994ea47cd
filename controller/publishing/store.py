"""Which lessons are published, kept as the lead's own push target.

Publishing a lesson adds one live push target, named :data:`TARGET_NAME`, pointing at the
origin's RTMP application with the lesson's stream key: the lead classroom's agent then
pushes the packets it already encodes to the origin as to any live platform, and its
heartbeat reports how that push is doing. Unpublishing removes the target (the agent
stops that push) and the origin's gate refuses the key from then on. Nothing else is
stored: watch links are signed, not recorded (the audit log keeps who asked for one).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from controller.common.errors import InvalidRequest
from controller.db.models import Lesson
from controller.live_push.store import CHANGEABLE, push_document, push_targets, set_push_targets
from controller.publishing.links import check_lesson_id, stream_key
from controller.publishing.origin import OriginConfig
from protocols.live_push import MAX_TARGETS
from protocols.messages import PushTarget

TARGET_NAME = "公开课 HLS"


def publish_target(origin: OriginConfig, lesson_id: str) -> PushTarget:
    """The push target that sends ``lesson_id`` to the origin."""
    key = stream_key(origin.secret, lesson_id)
    return PushTarget(name=TARGET_NAME, url=f"{origin.push_url}/{lesson_id}?key={key}")


def is_published(db: Session, lesson_id: str) -> bool:
    """Whether the lesson is published and not over (the gate's question)."""
    lesson = db.get(Lesson, lesson_id)
    if lesson is None or lesson.state not in CHANGEABLE:
        return False
    return any(t.name == TARGET_NAME for t in push_targets(db, lesson_id))


def publish(db: Session, origin: OriginConfig, lesson: Lesson, by: str) -> None:
    """Add (or renew) the lesson's origin target; ``WrongState`` once it is over,
    ``InvalidRequest`` when the id cannot name a stream or the lesson has no room."""
    try:
        check_lesson_id(lesson.id)
    except ValueError as err:
        raise InvalidRequest(str(err)) from None
    others = [t for t in push_targets(db, lesson.id) if t.name != TARGET_NAME]
    if len(others) >= MAX_TARGETS:
        raise InvalidRequest(
            f"lesson {lesson.id} already pushes to {len(others)} platforms, the most a lead "
            "classroom sends; remove one in the lesson's live push targets first"
        )
    set_push_targets(db, lesson, [*others, publish_target(origin, lesson.id)], by)


def unpublish(db: Session, lesson: Lesson, by: str) -> bool:
    """Remove the origin target; False when the lesson was not published."""
    targets = push_targets(db, lesson.id)
    kept = [t for t in targets if t.name != TARGET_NAME]
    if len(kept) == len(targets):
        return False
    set_push_targets(db, lesson, kept, by)
    return True


def publication(db: Session, lesson: Lesson) -> dict[str, Any]:
    """Whether the lesson is published and how the lead's push to the origin is doing."""
    doc = push_document(db, lesson)
    mine = next((t for t in doc["targets"] if t["name"] == TARGET_NAME), None)
    return {
        "lesson_id": lesson.id,
        "lesson_state": lesson.state,
        "published": mine is not None,
        "push": mine,
        "changeable": doc["changeable"],
    }
