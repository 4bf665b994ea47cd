"""Signed-in browsers: a random cookie whose SHA-256 is kept, with a CSRF token and a 12 h
idle expiry."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from controller.auth.accounts import sha256_hex
from controller.db.models import ConsoleUser, WebSession
from controller.db.session import as_utc, utcnow

COOKIE = "classbridge_session"
IDLE = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as, and how it proved it."""

    username: str
    display_name: str
    role: str
    via: str  # "session" or "token"
    csrf: str = ""
    session_hash: str = ""


def open_session(db: Session, user: ConsoleUser) -> tuple[str, str]:
    """Start a session; returns (cookie value, CSRF token)."""
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    db.add(
        WebSession(
            id_hash=sha256_hex(cookie),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=now + IDLE,
        )
    )
    db.commit()
    return cookie, csrf


def find_session(db: Session, cookie: str) -> Principal | str:
    """The session's principal (its idle expiry moved on), or why there is none."""
    row = db.get(WebSession, sha256_hex(cookie))
    if row is None:
        return "you are not signed in (unknown session); sign in again"
    now = utcnow()
    if as_utc(row.expires_at) <= now:
        db.delete(row)
        db.commit()
        return "your session has expired after 12 hours idle; sign in again"
    user = db.get(ConsoleUser, row.user_id)
    if user is None:
        return "your user no longer exists; ask an administrator"
    if now - as_utc(row.last_seen_at) > TOUCH_EVERY:
        row.last_seen_at = now
        row.expires_at = now + IDLE
        db.commit()
    return Principal(
        user.username, user.display_name, user.role, "session", row.csrf_token, row.id_hash
    )


def close_session(db: Session, session_hash: str) -> None:
    """Sign out: forget the session."""
    db.execute(delete(WebSession).where(WebSession.id_hash == session_hash))
    db.commit()
