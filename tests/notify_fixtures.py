"""What the notification tests share: the clock they move, two schools' classrooms, and
subscriptions stored directly (the API's own tests go through HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import NotifySubscription

# 08:00 in Beijing.
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
ROOMS = {"city-101": ("city", "一楼录播室"), "village-201": ("village", "村小录播室")}


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def subscribe(db: sessionmaker[Session], channel: str, config: dict[str, Any], **kw: Any) -> int:
    """Store a subscription directly (the API's own tests go through HTTP)."""
    with db() as s:
        sub = NotifySubscription(
            name=kw.pop("name", channel),
            school=kw.pop("school", "city"),
            channel=channel,
            config=config,
            created_at=T0,
            last_error="",
            **kw,
        )
        s.add(sub)
        s.commit()
        return sub.id
