"""Waiting for the controller database at start-up: retries with backoff, then a clear
failure naming the database without its password.

A PostgreSQL server that is still starting (or a network not yet up after a reboot) is
waited for; a server that answers "wrong password" or "no such database" is not, since
asking again would not change its answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import DBAPIError

from controller.db.errors import DatabaseRefused, DatabaseUnreachable
from controller.db.urls import hide_password, is_postgresql, normalise, parse

log = logging.getLogger(__name__)

# Start-up waits this long for the database unless told otherwise (--database-wait).
DEFAULT_WAIT_S = 60.0
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0
CONNECT_TIMEOUT_S = 5
# Answers that retrying cannot cure: invalid authorisation (SQLSTATE class 28: wrong
# password, no such role, pg_hba.conf refuses) and no such database (3D000). libpq gives
# no SQLSTATE for a refused connection, only the server's message, hence the phrases; a
# server answering in another language is retried until the wait is over.
_REFUSED_PREFIXES = ("28", "3D000")
_REFUSED_PHRASES = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",  # role or database
    "permission denied for database",
)


def wait_for_database(
    url: str,
    wait_s: float = DEFAULT_WAIT_S,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once ``url`` answers a query; retry a PostgreSQL server that does not answer
    with backoff (0.5 s doubling to 10 s) for ``wait_s`` seconds in all.

    Raises DatabaseUnreachable when time is up, DatabaseRefused at once on a refusal.
    SQLite is tried once: a file that will not open will not open later either.
    """
    shown = hide_password(url)
    secret = parse(url).password
    retry = is_postgresql(url)
    deadline = time.monotonic() + wait_s
    delay = FIRST_DELAY_S
    attempts = 0
    while True:
        attempts += 1
        try:
            _probe(url)
        except DBAPIError as err:
            reason = _reason(err, secret)
            if _refused(err):
                raise DatabaseRefused(
                    f"database {shown} refused the connection: {reason}"
                ) from None
            left = deadline - time.monotonic()
            if not retry or left <= 0:
                tried = f" (tried {attempts} times over {wait_s:g} s)" if attempts > 1 else ""
                raise DatabaseUnreachable(
                    f"database {shown} is unreachable{tried}: {reason}"
                ) from None
            pause = min(delay, left)
            log.warning(
                "database %s is unreachable (%s); trying again in %.1f s (giving up in %.1f s)",
                shown,
                reason,
                pause,
                left,
            )
            sleep(pause)
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        if attempts > 1:
            log.info("database %s answered after %d attempts", shown, attempts)
        return


def _probe(url: str) -> None:
    """One connection and ``SELECT 1``, closed again."""
    args = {"connect_timeout": CONNECT_TIMEOUT_S} if is_postgresql(url) else {}
    engine = create_engine(normalise(url), poolclass=pool.NullPool, connect_args=args)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def _refused(err: DBAPIError) -> bool:
    state = getattr(err.orig, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith(_REFUSED_PREFIXES)
    message = str(err.orig)
    return "FATAL:" in message and any(phrase in message for phrase in _REFUSED_PHRASES)


def _reason(err: DBAPIError, secret: str | None) -> str:
    """The driver's own words on one line, never the password (drivers do not echo it,
    but a message is no place to find out that one does)."""
    reason = " ".join(str(err.orig).split()) or type(err.orig).__name__
    if secret:
        reason = reason.replace(secret, "***")
    return reason
