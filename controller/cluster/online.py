"""Which agents are online on any controller: this controller's own presence, and the
classrooms the database shows heard from lately (the other controllers' heartbeat
batches write ``classroom.online`` and ``last_seen_at`` every second)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.heartbeat_writer import QUIET_REFRESH_S
from controller.agents.presence import Presence
from controller.db.models import Classroom
from controller.db.session import utcnow

log = logging.getLogger(__name__)

REFRESH_S = 1.0
# A heartbeat reaches the database a batch (1 s) after it arrived, or later when that
# controller's writer falls behind (bench-control-plane at load average 11: 915 rooms
# waiting, and the other controller's 500 agents looked offline here). A classroom is
# online elsewhere while its row was written within the time-to-dead and this slack, in
# heartbeat intervals (at least WRITE_SLACK_S). The price: a dead controller's agents look
# online that much longer, until they register with another. A quiet classroom's row is
# refreshed only every ``QUIET_REFRESH_S`` (``controller.agents.heartbeat_writer``), which
# the slack adds.
WRITE_SLACK_S = 2.0
WRITE_SLACK_BEATS = 2.0


class ClusterOnline:
    """Online agents across the controllers, read from the database once a second."""

    def __init__(self, local: Presence, sessions: sessionmaker[Session]) -> None:
        self._local = local
        self._sessions = sessions
        self._elsewhere: frozenset[str] = frozenset()
        self._heard: set[str] = set()  # told by another controller since the last read
        self._task: asyncio.Task[None] | None = None
        self.refresh_errors = 0

    def is_online(self, classroom_id: str) -> bool:
        """Online here or on another controller."""
        return (
            self._local.is_online(classroom_id)
            or classroom_id in self._elsewhere
            or classroom_id in self._heard
        )

    @property
    def online(self) -> list[str]:
        """Every classroom online on any controller."""
        return sorted(set(self._local.online) | self._elsewhere | self._heard)

    def heard(self, classroom_id: str) -> None:
        """Another controller said the agent registered with it."""
        self._heard.add(classroom_id)

    async def start(self) -> None:
        """Read the database now and then every second."""
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="cluster-online")

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def refresh(self) -> None:
        """Read which classrooms were heard from lately (a worker thread)."""
        slack = (
            max(WRITE_SLACK_S, WRITE_SLACK_BEATS * self._local.heartbeat_interval) + QUIET_REFRESH_S
        )
        window = timedelta(seconds=self._local.time_to_dead + slack)

        def work() -> frozenset[str]:
            with self._sessions() as db:
                rows = db.scalars(
                    select(Classroom.id).where(
                        Classroom.online.is_(True), Classroom.last_seen_at >= utcnow() - window
                    )
                )
                return frozenset(rows)

        heard_before = set(self._heard)
        self._elsewhere = await asyncio.to_thread(work)
        self._heard -= heard_before  # the database has caught up with what we were told

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except (SQLAlchemyError, OSError) as err:
                self.refresh_errors += 1
                log.warning("cluster presence: database read failed (%s); keeping the last", err)
