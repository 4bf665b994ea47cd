"""Signed-in browsers: a random cookie whose SHA-256 is kept, with a CSRF token, an idle
expiry and an absolute lifetime (``SecurityPolicy``: 30 min and 12 h by default)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from controller.auth.accounts import DISABLED, sha256_hex
from controller.common.security import SecurityPolicy
from controller.db.models import ConsoleUser, WebSession
from controller.db.session import as_utc, utcnow

COOKIE = "classbridge_session"
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


def _minutes(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 and minutes >= 60 else f"{minutes} min"


def open_session(db: Session, user: ConsoleUser, policy: SecurityPolicy) -> tuple[str, str]:
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
            expires_at=min(now + policy.session_idle, now + policy.session_lifetime),
        )
    )
    db.commit()
    return cookie, csrf


def find_session(db: Session, cookie: str, policy: SecurityPolicy) -> Principal | str:
    """The session's principal (its idle expiry moved on), or why there is none. Both
    limits are measured from the stored times with today's policy, so a shorter limit
    set at a restart applies to sessions already open."""
    row = db.get(WebSession, sha256_hex(cookie))
    if row is None:
        return (
            "未登录或会话已失效，请重新登录 / you are not signed in (unknown session); "
            "sign in again"
        )
    now = utcnow()
    created, seen = as_utc(row.created_at), as_utc(row.last_seen_at)
    reason = ""
    if now - created >= policy.session_lifetime:
        span = _minutes(policy.session_lifetime)
        reason = (
            f"会话已达最长时限 {span}，请重新登录 / your session reached its limit of {span}; "
            "sign in again"
        )
    elif now - seen >= policy.session_idle or as_utc(row.expires_at) <= now:
        span = _minutes(policy.session_idle)
        reason = (
            f"超过 {span} 未操作，会话已过期，请重新登录 / your session expired after {span} "
            "idle; sign in again"
        )
    if reason:
        db.delete(row)
        db.commit()
        return reason
    user = db.get(ConsoleUser, row.user_id)
    if user is None:
        return "your user no longer exists; ask an administrator"
    if user.disabled_at is not None:  # disabling deletes sessions; this closes a race
        db.delete(row)
        db.commit()
        return DISABLED
    if now - seen > TOUCH_EVERY:
        row.last_seen_at = now
        row.expires_at = min(now + policy.session_idle, created + policy.session_lifetime)
        db.commit()
    return Principal(
        user.username, user.display_name, user.role, "session", row.csrf_token, row.id_hash
    )


def close_session(db: Session, session_hash: str) -> None:
    """Sign out: forget the session."""
    db.execute(delete(WebSession).where(WebSession.id_hash == session_hash))
    db.commit()
