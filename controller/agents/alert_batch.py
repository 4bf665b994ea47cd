"""Heartbeat alerts for a whole batch of classrooms in a handful of statements.

``record_heartbeat_alerts`` (controller.agents.alerts) asks the database two or three
questions per classroom and writes its rows through the ORM; at thousands of classrooms a
second that is most of the controller's CPU. Here the same decisions are made for a batch:
one query for every alert row of the batch, one for the lessons near of the classrooms that
report readiness reasons, one for their stuck uploads; then one INSERT for the new rows and
one UPDATE per set of changed columns, each an executemany. A row whose state does not
change (a cleared alert that was already inactive) is not written at all, and only the
columns that change are written, so an acknowledgement made meanwhile is not overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from controller.agents.alerts import (
    CONTROLLER_RAISED,
    READY_BEFORE,
    SUSTAINED,
    UPLOAD_STUCK_AFTER,
    alerts_from_health,
    stuck_message,
)
from controller.db.models import AlertState, Lesson, LessonReceiver, UploadSession
from controller.db.session import as_utc
from controller.lessons.states import ACTIVE_STATES

_ALERTS = cast(Table, AlertState.__table__)
# The columns a heartbeat may change, as the per-classroom path does.
_STATE = (
    "message",
    "first_seen",
    "last_seen",
    "active",
    "pending_since",
    "acknowledged_by",
    "acknowledged_at",
)


@dataclass(frozen=True)
class BeatHealth:
    """One classroom's heartbeat health (as JSON) and when it arrived."""

    classroom_id: str
    health: Mapping[str, object]
    at: datetime


def _lessons_soon(db: Session, beats: Sequence[BeatHealth]) -> set[str]:
    """The classrooms (of those reporting readiness reasons) with a lesson under way or
    starting within ``READY_BEFORE`` of their own heartbeat's time."""
    asking = {b.classroom_id: b.at for b in beats if b.health.get("readiness")}
    if not asking:
        return set()
    lo, hi = min(asking.values()), max(asking.values())
    window = and_(
        Lesson.state.in_(ACTIVE_STATES), Lesson.start_at < hi + READY_BEFORE, Lesson.end_at > lo
    )
    ids = list(asking)
    led = select(Lesson.lead_classroom_id, Lesson.start_at, Lesson.end_at).where(
        window, Lesson.lead_classroom_id.in_(ids)
    )
    received = (
        select(LessonReceiver.classroom_id, Lesson.start_at, Lesson.end_at)
        .join(Lesson, Lesson.id == LessonReceiver.lesson_id)
        .where(window, LessonReceiver.classroom_id.in_(ids))
    )
    soon: set[str] = set()
    for query in (led, received):
        for cid, start, end in db.execute(query):
            at = asking[cid]
            if as_utc(start) < at + READY_BEFORE and as_utc(end) > at:
                soon.add(cid)
    return soon


def _uploads_stuck(db: Session, beats: Sequence[BeatHealth]) -> dict[str, str]:
    """The stuck-upload message by classroom, for those reporting uploads pending."""
    asking: dict[str, datetime] = {}
    for b in beats:
        pending = b.health.get("uploads_pending")
        if isinstance(pending, int | float) and not isinstance(pending, bool) and pending > 0:
            asking[b.classroom_id] = b.at
    if not asking:
        return {}
    hi = max(asking.values())
    query = (
        select(UploadSession.classroom_id, func.min(UploadSession.created_at))
        .where(
            UploadSession.classroom_id.in_(list(asking)),
            UploadSession.state == "open",
            UploadSession.created_at < hi - UPLOAD_STUCK_AFTER,
        )
        .group_by(UploadSession.classroom_id)
    )
    out: dict[str, str] = {}
    for cid, oldest in db.execute(query):
        at = asking[cid]
        # The oldest open upload qualifies for this heartbeat's time if any does.
        if oldest is not None and as_utc(oldest) < at - UPLOAD_STUCK_AFTER:
            out[cid] = stuck_message(as_utc(oldest), at)
    return out


def _same(a: object, b: object) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):
        return as_utc(a) == as_utc(b)
    return a == b


def _plan_row(
    row: Mapping[str, Any], message: str | None, hold: timedelta | None, now: datetime
) -> dict[str, Any]:
    """The changed columns of one existing row: ``message`` None when the heartbeat no
    longer raises it (and it is no controller-raised kind)."""
    st = dict(row)
    if message is None:
        st["active"], st["pending_since"] = False, None
    else:
        settled = True
        if not st["active"]:
            if hold is not None:
                if st["pending_since"] is None:
                    st["pending_since"] = now
                if now - as_utc(st["pending_since"]) < hold:
                    st["message"] = message
                    settled = False
            if settled:
                st["active"], st["first_seen"] = True, as_utc(st["pending_since"] or now)
                st["pending_since"] = None
                st["acknowledged_by"] = st["acknowledged_at"] = None
        if settled:
            st["last_seen"], st["message"] = now, message
    return {c: st[c] for c in _STATE if not _same(st[c], row[c])}


def record_batch_alerts(db: Session, beats: Sequence[BeatHealth]) -> None:
    """``record_heartbeat_alerts`` for many classrooms at once (the caller commits)."""
    if not beats:
        return
    soon = _lessons_soon(db, beats)
    stuck = _uploads_stuck(db, beats)
    existing: dict[str, dict[str, dict[str, Any]]] = {}
    columns = [_ALERTS.c.id, _ALERTS.c.classroom_id, _ALERTS.c.key, *(_ALERTS.c[c] for c in _STATE)]
    ids = [b.classroom_id for b in beats]
    query = select(*columns).where(_ALERTS.c.classroom_id.in_(ids))
    for found in db.execute(query).mappings():
        existing.setdefault(found["classroom_id"], {})[found["key"]] = dict(found)
    inserts: list[dict[str, Any]] = []
    updates: dict[frozenset[str], list[dict[str, Any]]] = {}
    for beat in beats:
        cid, now = beat.classroom_id, beat.at
        raised = alerts_from_health(beat.health, cid in soon)
        if cid in stuck:
            raised["upload_stuck"] = stuck[cid]
        rows = existing.get(cid, {})
        for key, message in raised.items():
            hold = SUSTAINED.get(key.split(":", 1)[0])
            row = rows.get(key)
            if row is None:
                inserts.append(
                    {
                        "classroom_id": cid,
                        "key": key,
                        "message": message,
                        "first_seen": now,
                        "last_seen": now,
                        "active": hold is None,
                        "pending_since": now if hold is not None else None,
                    }
                )
                continue
            changes = _plan_row(row, message, hold, now)
            if changes:
                updates.setdefault(frozenset(changes), []).append({"b_id": row["id"], **changes})
        for key, row in rows.items():
            if key not in raised and key not in CONTROLLER_RAISED:
                changes = _plan_row(row, None, None, now)
                if changes:
                    updates.setdefault(frozenset(changes), []).append(
                        {"b_id": row["id"], **changes}
                    )
    if inserts:
        db.execute(insert(_ALERTS), inserts)
    by_id = _ALERTS.c.id == bindparam("b_id")
    for params in updates.values():
        db.execute(update(_ALERTS).where(by_id), params)
