"""The emergency switch's publisher: the controller's HLS origin (``controller.publishing``),
and the watch links students at home open."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from controller.db.models import Lesson
from controller.db.session import as_utc
from controller.emergency.store import PublisherFactory
from controller.publishing import store
from controller.publishing.links import intranet_path, public_path
from controller.publishing.origin import OriginConfig

# A watch link works until the lesson's end and this long after (a lesson let run over);
# switching back unpublishes the lesson, which stops every link at once anyway.
AFTER_END_S = 15 * 60


class OriginPublisher:
    """Publishes through one HLS origin."""

    def __init__(self, origin: OriginConfig) -> None:
        self.origin = origin

    def publish(self, db: Session, lesson: Lesson, by: str) -> None:
        """Add the lesson's push to the origin (``InvalidRequest``/``WrongState`` if not)."""
        store.publish(db, self.origin, lesson, by)

    def unpublish(self, db: Session, lesson: Lesson, by: str) -> bool:
        """Remove it; False when it was not published."""
        return store.unpublish(db, lesson, by)

    def is_published(self, db: Session, lesson_id: str) -> bool:
        """Whether the lesson is published now."""
        return store.is_published(db, lesson_id)

    def links(self, lesson: Lesson, until: datetime | None) -> dict[str, str]:
        """The public watch link, signed until the lesson's end, and the intranet one."""
        expires = int(as_utc(lesson.end_at).timestamp()) + AFTER_END_S
        return {
            "public_url": self.origin.viewer_base
            + public_path(self.origin.secret, lesson.id, expires),
            "intranet_url": self.origin.lan_base + intranet_path(lesson.id),
        }


def emergency_publisher(origin: OriginConfig | None) -> PublisherFactory:
    """What the switch publishes through: this controller's origin, or nothing."""
    if origin is None:
        return lambda: None
    publisher = OriginPublisher(origin)
    return lambda: publisher
