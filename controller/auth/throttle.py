"""Throttling of failed sign-ins, per source address and account (no lock-out).

Nobody can lock an account: failures are counted for the pair (address, user name). After
``FREE_FAILURES`` failures from one address for one name, every further attempt from that
address for that name must wait, 2 s after the next failure, then 4, 8, … up to
``MAX_DELAY``. The same name from another address is not slowed, so an attacker cannot keep
the real administrator out. The counts live in the database, so a restart does not reset
them and ``classroom-controller user unlock`` (another process) can clear them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.db.models import SignInFailure
from controller.db.session import as_utc

FREE_FAILURES = 5
MAX_DELAY = timedelta(minutes=15)
KEEP_FOR = timedelta(days=1)  # a pair quiet this long starts afresh


def delay_after(failures: int) -> timedelta:
    """How long to wait after the ``failures``-th failure in a row."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    exponent = min(failures - FREE_FAILURES + 1, 20)
    return min(MAX_DELAY, timedelta(seconds=2**exponent))


def _row(db: Session, remote: str, username: str) -> SignInFailure | None:
    return db.get(SignInFailure, (remote[:64], username[:64]))


def wait_left(db: Session, remote: str, username: str, now: datetime) -> float:
    """Seconds before ``remote`` may try ``username`` again (0: now)."""
    row = _row(db, remote, username)
    if row is None:
        return 0.0
    free_at = as_utc(row.last_at) + delay_after(row.failures)
    return max(0.0, (free_at - now).total_seconds())


def record_failure(db: Session, remote: str, username: str, now: datetime) -> tuple[int, float]:
    """Count one failure; returns the failures in a row and the seconds to wait now."""
    db.execute(delete(SignInFailure).where(SignInFailure.last_at < now - KEEP_FOR))
    row = _row(db, remote, username)
    if row is None:
        row = SignInFailure(remote=remote[:64], username=username[:64], failures=0, last_at=now)
        db.add(row)
    row.failures += 1
    row.last_at = now
    db.commit()
    return row.failures, delay_after(row.failures).total_seconds()


def forget(db: Session, remote: str, username: str) -> None:
    """A successful sign-in clears that address's count for the name."""
    db.execute(
        delete(SignInFailure).where(
            SignInFailure.remote == remote[:64], SignInFailure.username == username[:64]
        )
    )
    db.commit()


def reset(db: Session, username: str) -> int:
    """Clear every address's count for ``username`` (an administrator's unlock)."""
    gone = db.execute(delete(SignInFailure).where(SignInFailure.username == username[:64]))
    db.commit()
    return int(gone.rowcount)  # type: ignore[attr-defined]


def throttled_pairs(db: Session, username: str, now: datetime) -> int:
    """How many addresses must wait before trying ``username`` again."""
    rows = db.scalars(select(SignInFailure).where(SignInFailure.username == username[:64]))
    return sum(1 for r in rows if as_utc(r.last_at) + delay_after(r.failures) > now)
