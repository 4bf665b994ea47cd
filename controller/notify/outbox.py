"""The outbox of notification messages (database work, run in worker threads).

``plan`` turns the alerts into messages owed: one per subscription per alert raise (the
unique key makes planning again after a restart harmless), none for a raise within a
subscription's hold-down of its last message (a flapping device), and escalations for
alerts nobody acknowledged in time. ``due`` hands out what to send now; ``sent`` and
``failed`` record the outcome, with backoff, and the channel's health on its
subscription."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from controller.agents.alerts import CRITICAL, severity, severity_rank
from controller.db.models import AlertState, Classroom, NotifyOutbox, NotifySubscription
from controller.db.session import as_utc
from controller.notify.channels import Message
from controller.notify.config import quiet_until
from controller.notify.messages import render

RAISE, ESCALATION = "raise", "escalation"
PENDING, SENT, DROPPED, HELD_DOWN = "pending", "sent", "dropped", "held_down"
BACKOFF_FIRST = timedelta(seconds=5)
BACKOFF_MAX = timedelta(minutes=10)
GIVE_UP_AFTER = timedelta(hours=24)
KEEP = timedelta(days=30)  # messages sent or dropped are kept this long, then pruned
BATCH = 50


@dataclass(frozen=True)
class Delivery:
    """One message to send now, with its channel's settings."""

    outbox_id: int
    subscription_id: int
    channel: str
    config: dict[str, Any]
    message: Message


def _owed(
    db: Session,
    sub: NotifySubscription,
    alert: AlertState,
    room: Classroom | None,
    kind: str,
    now: datetime,
    state: str = PENDING,
    error: str = "",
) -> None:
    raised = as_utc(alert.first_seen)
    after = sub.escalate_after_min if kind == ESCALATION else None
    message = render(alert, room, sub.timezone, after)
    level = severity(alert.key)
    held = None if level == CRITICAL else quiet_until(sub, now)
    db.add(
        NotifyOutbox(
            subscription_id=sub.id,
            alert_id=alert.id,
            kind=kind,
            raised_at=raised,
            severity=level,
            title=message.title,
            text=message.text,
            state=state,
            created_at=now,
            due_at=held or now,
            attempts=0,
            last_error=error,
        )
    )


def plan(db: Session, now: datetime) -> int:
    """Add the messages the active alerts now owe (commits); answers how many."""
    subs = list(db.scalars(select(NotifySubscription)).all())
    if not subs:
        return 0
    alerts = db.scalars(
        select(AlertState).where(
            AlertState.active.is_(True),
            or_(AlertState.silenced_until.is_(None), AlertState.silenced_until <= now),
        )
    ).all()
    if not alerts:
        return 0
    rooms = {
        r.id: r
        for r in db.scalars(
            select(Classroom).where(Classroom.id.in_({a.classroom_id for a in alerts}))
        ).all()
    }
    rows = db.execute(
        select(
            NotifyOutbox.subscription_id,
            NotifyOutbox.alert_id,
            NotifyOutbox.kind,
            NotifyOutbox.raised_at,
            NotifyOutbox.state,
        ).where(NotifyOutbox.alert_id.in_([a.id for a in alerts]))
    ).all()
    done = {(s, a, k, as_utc(r)) for s, a, k, r, _ in rows}
    # The last raise each subscription was (or will be) told of, per alert: the hold-down.
    told: dict[tuple[int, int], datetime] = {}
    for s, a, k, r, state in rows:
        if k == RAISE and state in (PENDING, SENT):
            told[(s, a)] = max(told.get((s, a), as_utc(r)), as_utc(r))
    added = 0
    for alert in alerts:
        room = rooms.get(alert.classroom_id)
        school = room.school if room is not None else None
        rank = severity_rank(severity(alert.key))
        raised = as_utc(alert.first_seen)
        for sub in subs:
            if sub.school is not None and sub.school != school:
                continue
            if rank < severity_rank(sub.min_severity):
                continue
            if sub.escalation:
                if alert.acknowledged_at is not None:
                    continue
                if now - raised < timedelta(minutes=sub.escalate_after_min):
                    continue
                if (sub.id, alert.id, ESCALATION, raised) in done:
                    continue
                _owed(db, sub, alert, room, ESCALATION, now)
                added += 1
                continue
            if (sub.id, alert.id, RAISE, raised) in done:
                continue
            last = told.get((sub.id, alert.id))
            if last is not None and raised - last < timedelta(minutes=sub.hold_down_min):
                _owed(
                    db,
                    sub,
                    alert,
                    room,
                    RAISE,
                    now,
                    HELD_DOWN,
                    f"raised again within {sub.hold_down_min} min of the last message",
                )
                continue
            _owed(db, sub, alert, room, RAISE, now)
            added += 1
    db.commit()
    return added


def due(db: Session, now: datetime) -> list[Delivery]:
    """The messages to send now (commits the ones dropped because their alert cleared,
    was acknowledged before its escalation, or was silenced)."""
    rows = db.scalars(
        select(NotifyOutbox)
        .where(NotifyOutbox.state == PENDING, NotifyOutbox.due_at <= now)
        .order_by(NotifyOutbox.due_at, NotifyOutbox.id)
        .limit(BATCH)
    ).all()
    out = []
    for row in rows:
        alert = db.get(AlertState, row.alert_id)
        sub = db.get(NotifySubscription, row.subscription_id)
        reason = None
        if alert is None or sub is None or not alert.active:
            reason = "the alert cleared before the message could be sent"
        elif alert.silenced_until is not None and as_utc(alert.silenced_until) > now:
            reason = "the alert was silenced"
        elif row.kind == ESCALATION and alert.acknowledged_at is not None:
            reason = "the alert was acknowledged before its escalation went out"
        if reason is not None or sub is None:
            row.state, row.last_error = DROPPED, reason or ""
            continue
        message = Message(title=row.title, text=row.text, markdown=_markdown(row.text))
        out.append(Delivery(row.id, sub.id, sub.channel, dict(sub.config or {}), message))
    db.commit()
    return out


def _markdown(text: str) -> str:
    title, _, rest = text.partition("\n")
    return f"### {title}\n\n" + "\n\n".join(f"- {line}" for line in rest.splitlines())


def sent(db: Session, outbox_id: int, now: datetime) -> None:
    """The message went out: the row is done and its channel healthy (commits)."""
    row = db.get(NotifyOutbox, outbox_id)
    if row is None:
        return
    row.state, row.sent_at, row.attempts = SENT, now, row.attempts + 1
    sub = db.get(NotifySubscription, row.subscription_id)
    if sub is not None:
        sub.failing_since, sub.last_error, sub.last_sent_at = None, "", now
    db.commit()


def failed(db: Session, outbox_id: int, error: str, now: datetime) -> datetime:
    """The channel refused or was not reachable: try again after a backoff, mark the
    channel failing (commits); a message owed for a day is given up. Answers when it is
    tried again."""
    row = db.get(NotifyOutbox, outbox_id)
    if row is None:
        return now
    row.attempts += 1
    row.last_error = error[:2000]
    if now - as_utc(row.created_at) >= GIVE_UP_AFTER:
        row.state = DROPPED
    else:
        row.due_at = now + min(BACKOFF_FIRST * 2 ** (row.attempts - 1), BACKOFF_MAX)
    sub = db.get(NotifySubscription, row.subscription_id)
    if sub is not None:
        if sub.failing_since is None:
            sub.failing_since = now
        sub.last_error = error[:2000]
    db.commit()
    return as_utc(row.due_at)


def hold(db: Session, outbox_ids: list[int], until: datetime) -> None:
    """Leave messages in the outbox until ``until``: their robot is at its rate limit.
    Not an attempt and not a failure (commits)."""
    db.execute(update(NotifyOutbox).where(NotifyOutbox.id.in_(outbox_ids)).values(due_at=until))
    db.commit()


def sent_since(db: Session, since: datetime) -> list[tuple[str, dict[str, Any], datetime]]:
    """(channel, config, sent at) of each message sent since ``since``, to count against
    its robot's rate limit after a restart."""
    rows = db.execute(
        select(NotifySubscription.channel, NotifySubscription.config, NotifyOutbox.sent_at)
        .join(NotifySubscription, NotifySubscription.id == NotifyOutbox.subscription_id)
        .where(NotifyOutbox.state == SENT, NotifyOutbox.sent_at >= since)
    ).all()
    return [(c, dict(cfg or {}), as_utc(at)) for c, cfg, at in rows if at is not None]


def retry_now(db: Session, subscription_id: int, now: datetime) -> None:
    """Messages waiting out a retry backoff go at the next pass (its channel was fixed);
    those held for quiet hours or a rate limit stay held (the caller commits)."""
    db.execute(
        update(NotifyOutbox)
        .where(
            NotifyOutbox.subscription_id == subscription_id,
            NotifyOutbox.state == PENDING,
            NotifyOutbox.attempts > 0,
            NotifyOutbox.due_at > now,
        )
        .values(due_at=now)
    )


def pending_counts(db: Session) -> dict[int, int]:
    """Messages waiting (held or retrying), by subscription."""
    rows = db.execute(
        select(NotifyOutbox.subscription_id, func.count())
        .where(NotifyOutbox.state == PENDING)
        .group_by(NotifyOutbox.subscription_id)
    ).all()
    return {int(s): int(n) for s, n in rows}


def prune(db: Session, now: datetime) -> int:
    """Delete messages settled more than ``KEEP`` ago (commits); answers how many."""
    result = db.execute(
        delete(NotifyOutbox).where(
            NotifyOutbox.state != PENDING, NotifyOutbox.created_at < now - KEEP
        )
    )
    db.commit()
    return int(getattr(result, "rowcount", 0) or 0)
