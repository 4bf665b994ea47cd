"""Console users, their API tokens, and signing in with lock-out."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.auth import passwords
from controller.auth.roles import check_role
from controller.db.models import ApiToken, ConsoleUser
from controller.db.session import as_utc, utcnow
from controller.errors import InvalidRequest, NotFound

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
TOKEN_PREFIX = "cbt_"

USERNAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
WRONG = "wrong user name or password"
LOCKED = (
    "too many failed sign-ins: this account is locked; try again later (in 15 minutes) "
    "or ask an administrator to unlock it"
)


def sha256_hex(secret: str) -> str:
    """The hex SHA-256 of a token; only this is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def get_user(db: Session, username: str) -> ConsoleUser:
    """The user, or NotFound saying how to list them."""
    user = db.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}; see `classroom-controller user list`")
    return user


def add_user(
    db: Session, username: str, role: str, password: str | None, display_name: str = ""
) -> ConsoleUser:
    """Create a user; ``password`` None makes a token-only account."""
    if not USERNAME.fullmatch(username):
        raise InvalidRequest(f"user name {username!r}: use 1-64 letters, digits, '.', '-' or '_'")
    try:
        check_role(role)
        if password is not None:
            passwords.check_policy(password)
    except ValueError as err:
        raise InvalidRequest(str(err)) from None
    if db.scalar(select(ConsoleUser).where(ConsoleUser.username == username)) is not None:
        raise InvalidRequest(f"user {username!r} exists already; pick another name")
    user = ConsoleUser(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=passwords.hash_password(password) if password is not None else "",
        failed_count=0,
        created_at=utcnow(),
    )
    db.add(user)
    db.commit()
    return user


def set_password(db: Session, username: str, password: str) -> None:
    """Give the user a new password (and unlock it)."""
    try:
        passwords.check_policy(password)
    except ValueError as err:
        raise InvalidRequest(str(err)) from None
    user = get_user(db, username)
    user.password_hash = passwords.hash_password(password)
    user.failed_count = 0
    user.locked_until = None
    db.commit()


def unlock(db: Session, username: str) -> None:
    """Lift a lock-out and forget the failed attempts."""
    user = get_user(db, username)
    user.failed_count = 0
    user.locked_until = None
    db.commit()


def user_document(user: ConsoleUser, now: datetime | None = None) -> dict[str, object]:
    """The JSON form of a user (never its hash)."""
    now = now or utcnow()
    until = as_utc(user.locked_until) if user.locked_until is not None else None
    locked = until is not None and until > now
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "locked": locked,
        "locked_until": until.isoformat() if locked and until is not None else None,
        "failed_count": user.failed_count,
        "password": bool(user.password_hash),
        "created_at": as_utc(user.created_at).isoformat(),
    }


def create_api_token(db: Session, username: str, label: str = "") -> str:
    """A new bearer token for the user; printed once, only its hash is kept."""
    user = get_user(db, username)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.add(
        ApiToken(token_hash=sha256_hex(token), user_id=user.id, label=label, created_at=utcnow())
    )
    db.commit()
    return token


def user_for_token(db: Session, token: str) -> ConsoleUser | None:
    """The user a bearer token acts as, or None if no such token."""
    row = db.get(ApiToken, sha256_hex(token))
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - as_utc(row.last_used_at) > timedelta(minutes=1):
        row.last_used_at = now
        db.commit()
    return db.get(ConsoleUser, row.user_id)


@dataclass(frozen=True)
class SignInResult:
    """What one sign-in attempt came to."""

    user: ConsoleUser | None
    message: str = ""
    locked_now: bool = False
    locked: bool = False


class SignIn:
    """Checks passwords and counts failures. Unknown user names are counted too (in
    memory), so they lock out alike and the answer never tells whether a user exists."""

    def __init__(self) -> None:
        self._unknown: dict[str, tuple[int, datetime | None]] = {}

    def attempt(self, db: Session, username: str, password: str) -> SignInResult:
        """Verify; on the MAX_FAILURES-th failure in a row lock the name for LOCK_FOR."""
        now = utcnow()
        user = db.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
        if user is None:
            return self._unknown_attempt(username[:64], password, now)
        if user.locked_until is not None and as_utc(user.locked_until) > now:
            passwords.burn_time(password)
            return SignInResult(None, LOCKED, locked=True)
        if passwords.verify(user.password_hash, password):
            user.failed_count = 0
            user.locked_until = None
            if passwords.needs_rehash(user.password_hash):
                user.password_hash = passwords.hash_password(password)
            db.commit()
            return SignInResult(user)
        user.failed_count += 1
        if user.failed_count >= MAX_FAILURES:
            user.failed_count = 0
            user.locked_until = now + LOCK_FOR
            db.commit()
            return SignInResult(None, LOCKED, locked_now=True, locked=True)
        db.commit()
        return SignInResult(None, WRONG)

    def _unknown_attempt(self, name: str, password: str, now: datetime) -> SignInResult:
        passwords.burn_time(password)
        count, until = self._unknown.get(name, (0, None))
        if until is not None and until > now:
            return SignInResult(None, LOCKED, locked=True)
        count += 1
        if count >= MAX_FAILURES:
            self._unknown[name] = (0, now + LOCK_FOR)
            return SignInResult(None, LOCKED, locked_now=True, locked=True)
        if len(self._unknown) > 10_000:  # bound the memory a name-spraying client can take
            self._unknown.clear()
        self._unknown[name] = (count, None)
        return SignInResult(None, WRONG)
