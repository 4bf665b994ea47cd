"""Agent keys enrolled (or withdrawn) through another controller, admitted here too.

Each controller's ZAP handler reads an in-memory ``KeyBook``. An agent enrolled with one
controller must be admitted by the others when it fails over, so every two seconds this
controller reads a cheap fingerprint of the enrolled keys (their count and the latest
enrolment time) and reloads the book when it changed.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import KeyBook
from controller.agents.registry import enrolled_keys
from controller.db.models import Classroom

log = logging.getLogger(__name__)

SYNC_S = 2.0


class KeySync:
    """Keeps a ``KeyBook`` in step with the database."""

    def __init__(self, sessions: sessionmaker[Session], book: KeyBook) -> None:
        self._sessions = sessions
        self._book = book
        self._seen: tuple[object, ...] | None = None
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0

    async def start(self) -> None:
        """Check every ``SYNC_S``."""
        self._task = asyncio.create_task(self._run(), name="cluster-keys")

    async def stop(self) -> None:
        """Stop checking."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def sync(self) -> bool:
        """Reload the book if the enrolled keys changed (a worker thread); whether it did."""
        with self._sessions() as db:
            row = db.execute(
                select(func.count(Classroom.public_key), func.max(Classroom.enrolled_at))
            ).one()
            fingerprint = tuple(row)
            if fingerprint == self._seen:
                return False
            self._book.load(enrolled_keys(db))
        self._seen = fingerprint
        self.reloads += 1
        return True

    async def _run(self) -> None:
        while True:
            try:
                if await asyncio.to_thread(self.sync):
                    log.info("agent keys reloaded (enrolled or withdrawn on any controller)")
            except (SQLAlchemyError, OSError) as err:
                log.warning("agent keys not reloaded (%s); trying again", err)
            await asyncio.sleep(SYNC_S)
