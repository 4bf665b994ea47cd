"""Agents' upload tokens: random per classroom, stored as SHA-256, revocable, rotated.

A token is issued when an agent registers (in ``RegisterAck``) and again, once the current
one is older than the rotation period, pushed to the connected agent as
``UploadTokenUpdate``. The token it replaces keeps working for a grace period so that
uploads under way finish; it is retired only once the agent has acknowledged the new one.
Re-enrolment and ``classroom revoke-upload-token`` delete every token of the classroom at
once; a connected agent then gets a fresh one on the next rotation tick.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import UploadToken
from controller.db.session import as_utc, utcnow
from protocols.envelope import Envelope
from protocols.messages import Body, CommandAck, UploadTokenUpdate

log = logging.getLogger(__name__)

TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 43 characters, 256 bits
ACK_TIMEOUT_S = 10.0
TICK_S = 60.0
# An agent that did not take a token (an older build, a busy link) is asked again after
# this long, not every tick; its current token keeps working meanwhile.
RETRY_AFTER = timedelta(minutes=15)


def token_hash(token: str) -> str:
    """The hex SHA-256 kept for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue(db: Session, classroom_id: str, now: datetime | None = None) -> str:
    """A fresh token for the classroom (stored hashed, current alongside any others until
    ``retire_others``); commits."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    db.add(
        UploadToken(
            token_hash=token_hash(token),
            classroom_id=classroom_id,
            issued_at=now or utcnow(),
            retire_at=None,
        )
    )
    db.commit()
    return token


def retire_others(
    db: Session, classroom_id: str, token: str, grace: timedelta, now: datetime | None = None
) -> None:
    """The agent has ``token``: every other token of the classroom stops working after
    ``grace`` (sooner if it was due to stop sooner); expired rows are pruned. Commits."""
    now = now or utcnow()
    keep = token_hash(token)
    until = now + grace
    db.execute(
        update(UploadToken)
        .where(
            UploadToken.classroom_id == classroom_id,
            UploadToken.token_hash != keep,
            or_(UploadToken.retire_at.is_(None), UploadToken.retire_at > until),
        )
        .values(retire_at=until)
    )
    db.execute(
        delete(UploadToken).where(
            UploadToken.classroom_id == classroom_id,
            UploadToken.retire_at.is_not(None),
            UploadToken.retire_at <= now,
        )
    )
    db.commit()


def withdraw(db: Session, classroom_id: str, token: str) -> None:
    """Forget a token that never reached its agent; commits."""
    db.execute(delete(UploadToken).where(UploadToken.token_hash == token_hash(token)))
    db.commit()


def revoke(db: Session, classroom_id: str) -> int:
    """Every upload token of the classroom stops working now; returns how many. Commits."""
    result = db.execute(delete(UploadToken).where(UploadToken.classroom_id == classroom_id))
    db.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def check(db: Session, classroom_id: str, token: str, now: datetime | None = None) -> bool:
    """Whether ``token`` is a working upload token of ``classroom_id``."""
    if not classroom_id or not token:
        return False
    row = db.get(UploadToken, token_hash(token))
    if row is None or not secrets.compare_digest(row.classroom_id, classroom_id):
        return False
    return row.retire_at is None or as_utc(row.retire_at) > (now or utcnow())


def newest_issue(db: Session, classroom_id: str) -> datetime | None:
    """When the classroom's newest current token was issued; None if it has none."""
    value = db.scalar(
        select(UploadToken.issued_at)
        .where(UploadToken.classroom_id == classroom_id, UploadToken.retire_at.is_(None))
        .order_by(UploadToken.issued_at.desc())
        .limit(1)
    )
    return as_utc(value) if value is not None else None


def newest_issues(db: Session) -> dict[str, datetime]:
    """Each classroom with a current token: when its newest current one was issued."""
    rows = db.execute(
        select(UploadToken.classroom_id, func.max(UploadToken.issued_at))
        .where(UploadToken.retire_at.is_(None))
        .group_by(UploadToken.classroom_id)
    ).all()
    return {cid: as_utc(issued) for cid, issued in rows if issued is not None}


class Requester(Protocol):
    """What the rotator needs of the hub: ask one agent and await its answer."""

    async def request(self, classroom_id: str, body: Body, timeout: float) -> Envelope:
        """Send and wait for the reply."""
        ...


class UploadTokenRotator:
    """Gives each connected agent a fresh token once its current one is older than the
    rotation period (or it has none: revoked). Runs as one task; a failed round is logged
    and the next tick tries again."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        hub: Requester,
        online: Callable[[], list[str]],
        rotation: timedelta,
        grace: timedelta,
        tick_s: float = TICK_S,
    ) -> None:
        self._sessions = sessions
        self._hub = hub
        self._online = online
        self.rotation = rotation
        self.grace = grace
        self._tick_s = tick_s
        self._task: asyncio.Task[None] | None = None
        self.rotated = 0
        self.failed = 0
        self._failed_at: dict[str, datetime] = {}

    async def start(self) -> None:
        """Start the rotation loop."""
        self._task = asyncio.create_task(self._loop(), name="upload-token-rotation")

    async def stop(self) -> None:
        """Stop the loop; safe if never started."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            try:
                await self.rotate_due()
            except Exception:
                log.exception("upload token rotation round failed; trying again next tick")

    def _due(self) -> list[str]:
        now = utcnow()
        online = self._online()
        with self._sessions() as db:
            # One query for the fleet: a query per classroom cost a province's controller
            # 10,000 round trips a tick, on a thread that held the interpreter meanwhile.
            newest = newest_issues(db)
        return [
            cid
            for cid in online
            if ((issued := newest.get(cid)) is None or now - issued >= self.rotation)
            and now - self._failed_at.get(cid, now - RETRY_AFTER) >= RETRY_AFTER
        ]

    async def rotate_due(self) -> list[str]:
        """One round: rotate every connected classroom whose token is due, side by side;
        returns those rotated."""
        due = await asyncio.to_thread(self._due)
        results = await asyncio.gather(*(self.rotate(cid) for cid in due))
        return [cid for cid, ok in zip(due, results, strict=True) if ok]

    async def rotate(self, classroom_id: str) -> bool:
        """Issue, send and, once acknowledged, retire the previous tokens after the grace.
        A token the agent did not acknowledge is withdrawn again."""

        def issue_one() -> str:
            with self._sessions() as db:
                return issue(db, classroom_id)

        token = await asyncio.to_thread(issue_one)
        body = UploadTokenUpdate(upload_token=token, grace_s=self.grace.total_seconds())
        try:
            reply = await self._hub.request(classroom_id, body, ACK_TIMEOUT_S)
            ack = reply.expect(CommandAck)
            if not ack.ok:
                raise ConnectionError(f"agent refused it: {ack.error}")
        except (ConnectionError, TimeoutError, ValueError) as err:
            self.failed += 1
            self._failed_at[classroom_id] = utcnow()
            log.warning("upload token for %s not delivered (%s); will retry", classroom_id, err)

            def drop() -> None:
                with self._sessions() as db:
                    withdraw(db, classroom_id, token)

            await asyncio.to_thread(drop)
            return False

        def settle() -> None:
            with self._sessions() as db:
                retire_others(db, classroom_id, token, self.grace)

        await asyncio.to_thread(settle)
        self._failed_at.pop(classroom_id, None)
        self.rotated += 1
        log.info("upload token of %s rotated", classroom_id)
        return True
