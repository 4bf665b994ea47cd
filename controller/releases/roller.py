"""The controller's rollout loop: every tick, the open rollout takes its next step.

With several controllers on one PostgreSQL only the orchestrator's leader steps it (the
others would offer the same classrooms the same release at once, and each would judge
the ring's health on its own); on one controller that is always this one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from controller.releases import store

log = logging.getLogger(__name__)

TICK_S = 30.0


class Roller:
    """Runs ``store.tick`` every ``tick_s`` seconds; a failed step is logged and retried."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        online: Callable[[], list[str]],
        tick_s: float = TICK_S,
        leads: Callable[[], bool] = lambda: True,
    ) -> None:
        self._sessions = sessions
        self._online = online
        self._tick_s = tick_s
        self._leads = leads
        self.steps = 0
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    async def start(self) -> None:
        """Start ticking."""
        self._task = asyncio.create_task(self._run(), name="release-rollout")

    async def stop(self) -> None:
        """Stop ticking."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _step(self) -> None:
        if not self._leads():
            return
        with self._sessions() as db:
            store.tick(db, self._online())
        self.steps += 1

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._step)
            except Exception:
                self.failures += 1
                log.exception("rollout step failed; trying again next tick")
            await asyncio.sleep(self._tick_s)
