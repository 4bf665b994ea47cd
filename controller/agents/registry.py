"""Classrooms and their enrolment: one-time tokens, key admission."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.common.errors import EnrolmentRefused, InvalidRequest, NotFound
from controller.db.models import Classroom
from controller.db.session import as_utc, utcnow
from controller.recordings import upload_tokens

CLASSROOM_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
TOKEN_PREFIX = "cb1"
TOKEN_TTL = timedelta(hours=24)  # SecurityPolicy.enrol_token_ttl's default


def make_token(classroom_id: str, server_public: bytes) -> tuple[str, str]:
    """A fresh enrolment token and the hash stored for it.

    The token carries the controller's public key so the agent can pin it.
    """
    secret = secrets.token_urlsafe(18)
    raw = f"{classroom_id}|{secret}|{server_public.decode()}".encode()
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return token, hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str, str]:
    """Split a token into classroom id, secret and controller public key."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError(
            f"enrolment token must start with {TOKEN_PREFIX!r}; "
            "copy it again from 'classroom-controller classroom add'"
        )
    body = token[len(TOKEN_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        classroom_id, secret, server_key = raw.split("|")
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError("enrolment token is damaged (bad encoding); copy it again") from err
    if len(server_key) != 40:
        raise ValueError("enrolment token carries no valid controller key; copy it again")
    return classroom_id, secret, server_key


def add_classroom(
    db: Session,
    classroom_id: str,
    name: str,
    school: str,
    server_public: bytes,
    ttl: timedelta = TOKEN_TTL,
) -> str:
    """Create a classroom (or re-issue its token) and return a one-time enrolment token,
    valid for ``ttl``."""
    if not CLASSROOM_ID.match(classroom_id):
        raise InvalidRequest(
            f"classroom id {classroom_id!r} is not valid: use 1-64 lower-case letters, "
            "digits and '-', starting with a letter or digit (e.g. 'city-3-101')"
        )
    room = db.get(Classroom, classroom_id)
    if room is None:
        room = Classroom(
            id=classroom_id,
            name=name or classroom_id,
            school=school,
            online=False,
            inventory=[],
            health={},
        )
        db.add(room)
    token, token_hash = make_token(classroom_id, server_public)
    room.enrol_token_hash = token_hash
    room.enrol_expires_at = utcnow() + ttl
    db.commit()
    return token


def enrol(db: Session, token: str, public_key: str) -> tuple[str, str | None]:
    """Consume a token and bind ``public_key`` to its classroom, revoking the classroom's
    upload tokens; returns the classroom id and the key it replaced (None if none, or the
    same key enrolled again)."""
    try:
        classroom_id, secret, _ = parse_token(token)
    except ValueError as err:
        raise EnrolmentRefused(str(err)) from err
    room = db.get(Classroom, classroom_id)
    if room is None or room.enrol_token_hash is None:
        raise EnrolmentRefused(
            f"no pending enrolment for classroom {classroom_id!r}; "
            "issue a token with 'classroom-controller classroom add'"
        )
    if not secrets.compare_digest(
        room.enrol_token_hash, hashlib.sha256(secret.encode()).hexdigest()
    ):
        raise EnrolmentRefused(
            f"token for {classroom_id!r} does not match the one issued last; use the newest token"
        )
    if room.enrol_expires_at and as_utc(room.enrol_expires_at) < utcnow():
        raise EnrolmentRefused(f"token for {classroom_id!r} expired; issue a new one")
    other = db.scalar(select(Classroom).where(Classroom.public_key == public_key))
    if other is not None and other.id != classroom_id:
        raise EnrolmentRefused("this agent key is already enrolled for another classroom")
    now = utcnow()
    previous = room.public_key
    room.public_key = public_key
    room.enrol_token_hash = None
    room.enrol_expires_at = None
    room.enrolled_at = now
    db.commit()
    # The old agent's upload tokens die with its key.
    upload_tokens.revoke(db, classroom_id)
    return classroom_id, previous if previous != public_key else None


def enrolled_keys(db: Session) -> dict[str, str]:
    """``{public_key: classroom_id}`` for every enrolled classroom."""
    rows = db.execute(
        select(Classroom.public_key, Classroom.id).where(Classroom.public_key.is_not(None))
    ).all()
    return {key: cid for key, cid in rows if key}


def get_classroom(db: Session, classroom_id: str) -> Classroom:
    """A classroom by id, or ``NotFound`` naming it."""
    room = db.get(Classroom, classroom_id)
    if room is None:
        raise NotFound(
            f"classroom {classroom_id!r} does not exist; "
            "list them with 'classroom-controller classroom list'"
        )
    return room
