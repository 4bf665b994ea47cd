"""The audit log (审计日志): who did what, when, from where, including who watched which
recording or live lesson.

Rows are append-only: the database refuses to change them, or to delete one younger than
KEEP_DAYS_FLOOR days (triggers of migration 0011); ``prune`` is the one way rows go. Each
row, once committed, is also logged on the ``classbridge.audit`` logger, which
``controller.auth.audit_syslog`` forwards to the county's log collector.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from controller.db.models import AuditEntry
from controller.db.session import as_utc, utcnow

MAX_LIMIT = 1000
# 等保 level 3 keeps audit records at least six months; no configuration goes below this.
KEEP_DAYS_FLOOR = 183
AUDIT_LOGGER = "classbridge.audit"

log = logging.getLogger(AUDIT_LOGGER)


def record(
    db: Session,
    action: str,
    *,
    username: str = "",
    role: str = "",
    target: str = "",
    detail: dict[str, Any] | None = None,
    remote: str = "",
) -> None:
    """Append one row, commit, then log it on ``classbridge.audit`` (for syslog)."""
    row = AuditEntry(
        ts=utcnow(),
        username=username[:64],
        role=role,
        action=action[:100],
        target=target[:300],
        detail=detail or {},
        remote_addr=remote[:64],
    )
    db.add(row)
    db.commit()
    fields = _document(row)
    log.info(
        "%s %s %s",
        fields["username"] or "-",
        fields["action"],
        fields["target"] or "-",
        extra={"audit": fields},
    )


def _document(r: AuditEntry) -> dict[str, Any]:
    return {
        "id": r.id,
        "ts": as_utc(r.ts).isoformat(),
        "username": r.username,
        "role": r.role,
        "action": r.action,
        "target": r.target,
        "detail": r.detail,
        "remote": r.remote_addr,
    }


def prune(db: Session, keep_days: int = KEEP_DAYS_FLOOR) -> int:
    """Delete rows older than ``keep_days`` (at least KEEP_DAYS_FLOOR); how many went."""
    if keep_days < KEEP_DAYS_FLOOR:
        raise ValueError(
            f"the audit log is kept at least {KEEP_DAYS_FLOOR} days (six months); "
            f"{keep_days} is too short"
        )
    cutoff = utcnow() - timedelta(days=keep_days)
    result = cast("CursorResult[Any]", db.execute(delete(AuditEntry).where(AuditEntry.ts < cutoff)))
    gone = result.rowcount
    db.commit()
    return int(gone or 0)


def entries(
    db: Session, limit: int = 100, username: str | None = None, action: str | None = None
) -> list[dict[str, Any]]:
    """The newest rows first, maybe of one user or one action."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if username:
        query = query.where(AuditEntry.username == username)
    if action:
        query = query.where(AuditEntry.action == action)
    rows = db.scalars(query.limit(max(1, min(limit, MAX_LIMIT)))).all()
    return [_document(r) for r in rows]
