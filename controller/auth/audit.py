"""The audit log: who did what, when, from where."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import AuditEntry
from controller.db.session import as_utc, utcnow

MAX_LIMIT = 1000


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
    """Append one row and commit."""
    db.add(
        AuditEntry(
            ts=utcnow(),
            username=username[:64],
            role=role,
            action=action[:100],
            target=target[:300],
            detail=detail or {},
            remote_addr=remote[:64],
        )
    )
    db.commit()


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
    return [
        {
            "id": r.id,
            "ts": as_utc(r.ts).isoformat(),
            "username": r.username,
            "role": r.role,
            "action": r.action,
            "target": r.target,
            "detail": r.detail,
            "remote": r.remote_addr,
        }
        for r in rows
    ]
