"""Console users, their API tokens, and signing in (throttled per address, never locked)."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.auth import passwords, throttle
from controller.auth.roles import check_role
from controller.common.errors import InvalidRequest, NotFound
from controller.db.models import ApiToken, ConsoleUser, WebSession
from controller.db.session import as_utc, utcnow

TOKEN_PREFIX = "cbt_"
TOKEN_ID_LENGTH = 12  # the leading hex digits of a token's hash that name it in lists

USERNAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
WRONG = "wrong user name or password"
THROTTLED = (
    "too many failed sign-ins for this user name from your address: wait {seconds} s before "
    "the next try (other addresses are not slowed; an administrator can clear this with "
    "`classroom-controller user unlock NAME`)"
)
DISABLED = (
    "此账号已被管理员停用，请联系管理员 / this account has been disabled by an administrator; "
    "ask them to enable it again"
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
            passwords.check_policy(password, username)
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


def close_user_sessions(db: Session, user_id: int, keep: str = "") -> int:
    """End every browser session of a user except ``keep`` (a session hash); returns how
    many ended. Commits."""
    query = delete(WebSession).where(WebSession.user_id == user_id)
    if keep:
        query = query.where(WebSession.id_hash != keep)
    result = db.execute(query)
    db.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def set_password(db: Session, username: str, password: str, keep_session: str = "") -> int:
    """Give the user a new password (and clear its failed sign-ins). Every other session of
    the user ends: whoever knew the old password is signed out. Returns how many ended."""
    try:
        passwords.check_policy(password, username)
    except ValueError as err:
        raise InvalidRequest(str(err)) from None
    user = get_user(db, username)
    user.password_hash = passwords.hash_password(password)
    user.failed_count = 0
    user.locked_until = None
    db.commit()
    throttle.reset(db, username)
    return close_user_sessions(db, user.id, keep_session)


def change_own_password(
    db: Session, username: str, current: str, new: str, keep_session: str
) -> int:
    """A signed-in user changes their own password, proving the current one first."""
    user = get_user(db, username)
    if not passwords.verify(user.password_hash, current):
        raise InvalidRequest("当前密码不正确 / the current password is wrong")
    if current == new:
        raise InvalidRequest(
            "新密码不能与当前密码相同 / the new password must differ from the current one"
        )
    return set_password(db, username, new, keep_session)


def set_disabled(db: Session, username: str, disabled: bool) -> ConsoleUser:
    """Disable a user (every session ends at once, sign-in and API tokens are refused) or
    enable it again. Commits."""
    user = get_user(db, username)
    user.disabled_at = utcnow() if disabled else None
    db.commit()
    if disabled:
        close_user_sessions(db, user.id)
    return user


def unlock(db: Session, username: str) -> None:
    """Forget the user's failed sign-ins from every address (and any old lock-out)."""
    user = get_user(db, username)
    user.failed_count = 0
    user.locked_until = None
    db.commit()
    throttle.reset(db, username)


def user_document(user: ConsoleUser, now: datetime | None = None) -> dict[str, object]:
    """The JSON form of a user (never its hash)."""
    now = now or utcnow()
    until = as_utc(user.locked_until) if user.locked_until is not None else None
    locked = until is not None and until > now
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "school": user.school,  # None: the whole county
        "locked": locked,
        "locked_until": until.isoformat() if locked and until is not None else None,
        "failed_count": user.failed_count,
        "password": bool(user.password_hash),
        "created_at": as_utc(user.created_at).isoformat(),
        "disabled": user.disabled_at is not None,
        "disabled_at": as_utc(user.disabled_at).isoformat() if user.disabled_at else None,
    }


def create_api_token(
    db: Session, username: str, label: str = "", lifetime: timedelta | None = None
) -> str:
    """A new bearer token for the user, expiring after ``lifetime`` (None: never, for
    callers that say so explicitly); printed once, only its hash is kept."""
    user = get_user(db, username)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    db.add(
        ApiToken(
            token_hash=sha256_hex(token),
            user_id=user.id,
            label=label,
            created_at=now,
            expires_at=now + lifetime if lifetime is not None else None,
        )
    )
    db.commit()
    return token


def token_document(row: ApiToken, username: str, now: datetime | None = None) -> dict[str, object]:
    """The JSON form of an API token (its id, never the token or its whole hash)."""
    now = now or utcnow()
    expires = as_utc(row.expires_at) if row.expires_at is not None else None
    state = "active"
    if row.revoked_at is not None:
        state = "revoked"
    elif expires is not None and expires <= now:
        state = "expired"
    return {
        "id": row.token_hash[:TOKEN_ID_LENGTH],
        "user": username,
        "label": row.label,
        "state": state,
        "created_at": as_utc(row.created_at).isoformat(),
        "expires_at": expires.isoformat() if expires else None,
        "last_used_at": as_utc(row.last_used_at).isoformat() if row.last_used_at else None,
    }


def list_api_tokens(db: Session, username: str | None = None) -> list[dict[str, object]]:
    """Every API token (of one user), oldest first."""
    query = select(ApiToken, ConsoleUser.username).join(
        ConsoleUser, ConsoleUser.id == ApiToken.user_id
    )
    if username:
        query = query.where(ConsoleUser.username == username)
    rows = db.execute(query.order_by(ApiToken.created_at)).all()
    return [token_document(row, name) for row, name in rows]


def revoke_api_token(db: Session, token_id: str) -> dict[str, object]:
    """Revoke the token whose id (from ``list_api_tokens``) is ``token_id``; commits."""
    if len(token_id) < 8 or not all(c in "0123456789abcdef" for c in token_id):
        raise InvalidRequest(
            f"token id {token_id!r}: give the id shown by `classroom-controller token list` "
            "(at least 8 hex digits)"
        )
    rows = db.scalars(select(ApiToken).where(ApiToken.token_hash.startswith(token_id))).all()
    if not rows:
        raise NotFound(f"no API token with id {token_id!r}; see `classroom-controller token list`")
    if len(rows) > 1:
        raise InvalidRequest(f"token id {token_id!r} names {len(rows)} tokens; give more digits")
    row = rows[0]
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.commit()
    user = db.get(ConsoleUser, row.user_id)
    return token_document(row, user.username if user is not None else "")


def user_for_token(db: Session, token: str) -> ConsoleUser | str:
    """The user a bearer token acts as, or why it may not act."""
    row = db.get(ApiToken, sha256_hex(token))
    if row is None:
        return "unknown API token; create one with `classroom-controller token create USER`"
    now = utcnow()
    if row.revoked_at is not None:
        return (
            "this API token was revoked; create a new one with "
            "`classroom-controller token create USER`"
        )
    if row.expires_at is not None and as_utc(row.expires_at) <= now:
        return (
            f"this API token expired at {as_utc(row.expires_at).isoformat()}; create a new one "
            "with `classroom-controller token create USER`"
        )
    user = db.get(ConsoleUser, row.user_id)
    if user is None:
        return "the user of this API token no longer exists"
    if user.disabled_at is not None:
        return DISABLED
    if row.last_used_at is None or now - as_utc(row.last_used_at) > timedelta(minutes=1):
        row.last_used_at = now
        db.commit()
    return user


@dataclass(frozen=True)
class SignInResult:
    """What one sign-in attempt came to."""

    user: ConsoleUser | None
    message: str = ""
    throttled: bool = False  # refused unchecked: this address must wait first
    retry_after: float = 0.0  # seconds this address must now wait for this name
    failures: int = 0  # failures in a row from this address for this name
    disabled: bool = False  # the right password, but an administrator disabled the user


class SignIn:
    """Checks passwords; failures slow down the address that makes them (module
    ``throttle``). Unknown user names are counted and answered alike, so the answers never
    tell whether a user exists."""

    def attempt(self, db: Session, username: str, password: str, remote: str) -> SignInResult:
        """Verify, unless ``remote`` must still wait after its failures for this name."""
        now = utcnow()
        wait = throttle.wait_left(db, remote, username, now)
        if wait > 0:
            seconds = math.ceil(wait)
            return SignInResult(
                None, THROTTLED.format(seconds=seconds), throttled=True, retry_after=seconds
            )
        user = db.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
        if user is not None and passwords.verify(user.password_hash, password):
            throttle.forget(db, remote, username)
            if user.disabled_at is not None:  # told only to whoever knows the password
                return SignInResult(None, DISABLED, disabled=True)
            if passwords.needs_rehash(user.password_hash):
                user.password_hash = passwords.hash_password(password)
                db.commit()
            return SignInResult(user)
        if user is None:
            passwords.burn_time(password)
        failures, delay = throttle.record_failure(db, remote, username, now)
        return SignInResult(None, WRONG, retry_after=math.ceil(delay), failures=failures)
