"""The controller's rollout loop: every tick, the open rollout takes its next step."""

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
    ) -> None:
        self._sessions = sessions
        self._online = online
        self._tick_s = tick_s
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
        with self._sessions() as db:
            store.tick(db, self._online())

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._step)
            except Exception:
                self.failures += 1
                log.exception("rollout step failed; trying again next tick")
            await asyncio.sleep(self._tick_s)
