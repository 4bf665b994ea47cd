"""Subscriptions in the database, within an account's scope (database work, in threads)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.auth.scope import Scope
from controller.common.errors import NotFound, OutOfScope
from controller.db.models import NotifySubscription
from controller.notify.config import SubscriptionSpec, patched, subscription_document
from controller.notify.outbox import pending_counts, retry_now


def _require_scope(spec: SubscriptionSpec, scope: Scope) -> None:
    if spec.school is None and not scope.county:
        raise OutOfScope("county-wide notifications", scope.school or "", "set them up")
    if spec.school is not None:
        scope.require_schools([spec.school], "set up its notifications")


def add_subscription(
    db: Session, spec: SubscriptionSpec, scope: Scope, username: str, now: datetime
) -> dict[str, Any]:
    """Store a subscription (commits); a school account only for its own school."""
    _require_scope(spec, scope)
    sub = NotifySubscription(
        name=spec.name,
        school=spec.school,
        channel=spec.channel,
        config=spec.config,
        min_severity=spec.min_severity,
        quiet_start=spec.quiet_start,
        quiet_end=spec.quiet_end,
        timezone=spec.timezone,
        escalation=spec.escalation,
        escalate_after_min=spec.escalate_after_min,
        hold_down_min=spec.hold_down_min,
        created_by=username,
        created_at=now,
        last_error="",
    )
    db.add(sub)
    db.commit()
    return subscription_document(sub)


def _visible(scope: Scope, sub: NotifySubscription) -> bool:
    return scope.county or sub.school == scope.school


def get_subscription(db: Session, scope: Scope, sub_id: str) -> NotifySubscription:
    """The subscription ``sub_id`` if it exists in scope, else ``NotFound``."""
    try:
        sub = db.get(NotifySubscription, int(sub_id))
    except (ValueError, OverflowError):
        sub = None
    if sub is None or not _visible(scope, sub):
        raise NotFound(
            f"no notification subscription {sub_id!r} in {scope.describe()}; list them with "
            "GET /api/v1/notify/subscriptions"
        )
    return sub


def list_subscriptions(db: Session, scope: Scope) -> list[dict[str, Any]]:
    """Every subscription in scope (a school account: its school's), secrets left out,
    each with its channel's health and messages waiting."""
    waiting = pending_counts(db)
    subs = db.scalars(select(NotifySubscription).order_by(NotifySubscription.id)).all()
    out = []
    for sub in subs:
        if _visible(scope, sub):
            doc = subscription_document(sub)
            doc["pending"] = waiting.get(sub.id, 0)
            out.append(doc)
    return out


def update_subscription(
    db: Session, scope: Scope, sub_id: str, patch: object, now: datetime
) -> dict[str, Any]:
    """Change some of a subscription's fields (commits); a school account only its own
    school's, and not to another school or the county. A new channel or config clears the
    old one's failure and sends what was waiting for a retry now."""
    sub = get_subscription(db, scope, sub_id)
    spec = patched(sub, patch)
    _require_scope(spec, scope)
    moved = spec.channel != sub.channel or spec.config != (sub.config or {})
    sub.name, sub.school = spec.name, spec.school
    sub.channel, sub.config = spec.channel, spec.config
    sub.min_severity = spec.min_severity
    sub.quiet_start, sub.quiet_end, sub.timezone = spec.quiet_start, spec.quiet_end, spec.timezone
    sub.escalation, sub.escalate_after_min = spec.escalation, spec.escalate_after_min
    sub.hold_down_min = spec.hold_down_min
    if moved:
        sub.failing_since, sub.last_error = None, ""
        retry_now(db, sub.id, now)
    db.commit()
    doc = subscription_document(sub)
    doc["pending"] = pending_counts(db).get(sub.id, 0)
    return doc


def record_test(db: Session, sub_id: int, error: str | None, now: datetime) -> None:
    """A test message's outcome is the channel's health, as a real message's is (commits)."""
    sub = db.get(NotifySubscription, sub_id)
    if sub is None:
        return
    if error is None:
        sub.failing_since, sub.last_error, sub.last_sent_at = None, "", now
    else:
        sub.failing_since = sub.failing_since or now
        sub.last_error = error[:2000]
    db.commit()


def delete_subscription(db: Session, scope: Scope, sub_id: str) -> dict[str, Any]:
    """Delete a subscription and the messages it still owed (commits)."""
    sub = get_subscription(db, scope, sub_id)
    db.delete(sub)
    db.commit()
    return {"deleted": sub.id}


def channel_status(db: Session, scope: Scope) -> dict[str, Any]:
    """The health of every channel in scope, failing ones first, for the dashboard."""
    subs = list_subscriptions(db, scope)
    keys = ("id", "name", "school", "channel", "failing", "failing_since", "last_error")
    channels = [
        {k: s[k] for k in (*keys, "last_sent_at", "pending")}
        for s in sorted(subs, key=lambda s: (not s["failing"], s["id"]))
    ]
    return {"channels": channels, "failing": sum(1 for c in channels if c["failing"])}
