"""Password hashing with Argon2id (argon2-cffi's defaults, RFC 9106's second choice)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
# A passphrase this long needs no mix of character classes.
PASSPHRASE_LENGTH = 20
MIN_CLASSES = 3
# The most common passwords in leaked lists, Chinese sites' included. A password is
# refused if it is one of these once lower-cased and stripped of the digits and symbols
# people add at its ends ("Password123!" is "password").
_COMMON_WORDS = """
    password passw0rd p@ssw0rd p@ssword qwerty qwertyuiop asdfghjkl zxcvbnm qazwsx qwe
    abc abcdef abcdefg iloveyou woaini woaiwojia admin administrator root welcome
    letmein monkey dragon master sunshine princess football baseball shadow superman
    trustno changeme default secret login test guest classbridge classroom teacher
    school student aaaaaa aaaaaaaa zhang wang li liu chen huang zhao 123456 12345678
    123456789 1234567890 111111 000000 888888 666666 123123 5201314 1314520 147258369
    123qwe 1q2w3e4r 1qaz2wsx a123456
"""
COMMON: frozenset[str] = frozenset(_COMMON_WORDS.split())
CLASSES = (str.islower, str.isupper, str.isdigit)

_hasher = PasswordHasher()  # Argon2id, t=3, m=64 MiB, p=4
# Verified against when the user is unknown or locked, so the answer takes as long.
_DUMMY = _hasher.hash("classbridge-no-such-user")


class PolicyError(ValueError):
    """A password the policy refuses; the message is in Chinese and English, as the
    console shows it."""


def _cores(password: str) -> set[str]:
    """The password lower-cased, without the symbols, and without the digits and symbols,
    at its ends ("1qaz2wsx!!" is "1qaz2wsx"; "Password123!" is "password")."""
    low = password.lower()
    symbols = "!@#$%^&*()_+-=.,?~`'\" ;:/|[]{}<>"
    return {low, low.strip(symbols), low.strip("0123456789" + symbols)} - {""}


def _classes(password: str) -> int:
    """How many of lower-case, upper-case, digits and other characters it uses."""
    found = {i for ch in password for i, test in enumerate(CLASSES) if test(ch)}
    if any(not (ch.islower() or ch.isupper() or ch.isdigit()) for ch in password):
        found.add(len(CLASSES))
    return len(found)


def check_policy(password: str, username: str = "") -> str:
    """``password`` if acceptable, else ``PolicyError`` saying what to change."""
    if len(password) < MIN_LENGTH:
        raise PolicyError(
            f"密码太短：至少需要 {MIN_LENGTH} 个字符（现在 {len(password)} 个）/ the password "
            f"is too short: use at least {MIN_LENGTH} characters (it has {len(password)})"
        )
    name = username.lower()
    if name and (password.lower() == name or (len(name) >= 4 and name in password.lower())):
        raise PolicyError(
            "密码不能是用户名，也不能包含用户名 / the password must not be or contain the user name"
        )
    if _cores(password) & COMMON:
        raise PolicyError(
            "这是最常见的密码之一（或只加了数字、符号），很容易被猜到，请换一个 / this is one of "
            "the most common passwords (perhaps with digits or symbols added), easily "
            "guessed: pick another"
        )
    if len(password) < PASSPHRASE_LENGTH and _classes(password) < MIN_CLASSES:
        raise PolicyError(
            f"密码需包含大写字母、小写字母、数字、符号中的至少 {MIN_CLASSES} 类，或使用至少 "
            f"{PASSPHRASE_LENGTH} 个字符的长口令 / use at least {MIN_CLASSES} of: lower-case "
            f"letters, upper-case letters, digits, symbols; or a passphrase of at least "
            f"{PASSPHRASE_LENGTH} characters"
        )
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
