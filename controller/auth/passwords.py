"""Password hashing with Argon2id (argon2-cffi's defaults, RFC 9106's second choice)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8

_hasher = PasswordHasher()  # Argon2id, t=3, m=64 MiB, p=4
# Verified against when the user is unknown or locked, so the answer takes as long.
_DUMMY = _hasher.hash("classbridge-no-such-user")


def check_policy(password: str) -> str:
    """``password`` if acceptable, else ValueError saying what to change."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"the password is too short: use at least {MIN_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    """The Argon2id PHC string of ``password``."""
    return _hasher.hash(password)


def verify(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored``; an empty or bad ``stored`` never matches but
    costs the same time."""
    try:
        return _hasher.verify(stored or _DUMMY, password) and bool(stored)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def burn_time(password: str) -> None:
    """Spend the time of one verification (for unknown or locked users)."""
    verify("", password)


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored)
