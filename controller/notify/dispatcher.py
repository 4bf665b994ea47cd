"""The notification dispatcher: a task beside the controller's event loop work that plans
messages from the alerts and sends them, off the critical path (database work in worker
threads, every send with a timeout, a failing channel retried with backoff)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from controller.alerts import raise_offline_before_lessons
from controller.db.session import utcnow
from controller.notify import outbox
from controller.notify.channels import (
    TIMEOUT_S,
    Channel,
    DeliveryError,
    default_channels,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

INTERVAL_S = 1.0
PRUNE_EVERY = timedelta(hours=1)
OFFLINE_EVERY = timedelta(seconds=30)
CONCURRENCY = 4


class NotifyDispatcher:
    """Plans and sends alert messages; ``start``/``stop`` run it as a task, and
    ``run_once`` does one pass (tests drive it with their own clock)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        channels: Mapping[str, Channel] | None = None,
        clock: Callable[[], datetime] = utcnow,
        interval_s: float = INTERVAL_S,
        online: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self._sessions = sessions
        self._channels = dict(channels or default_channels())
        self._clock = clock
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._pruned_at: datetime | None = None
        # The agents online now (presence): classrooms not among them with a lesson near
        # are raised offline on each pass, at most every OFFLINE_EVERY.
        self._online = online
        self._offline_at: datetime | None = None
        self.sent = 0
        self.failures = 0

    async def start(self) -> None:
        """Run passes every ``interval_s`` until ``stop``."""
        self._task = asyncio.create_task(self._run(), name="notify-dispatcher")

    async def stop(self) -> None:
        """Stop the task (a message in flight is sent again after a restart)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def poke(self) -> None:
        """Run a pass now rather than at the next interval."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # the next pass tries again; a dead dispatcher tells nobody
                log.exception("notification pass failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            self._wake.clear()

    def _db(self, work: Callable[[Session], T]) -> T:
        with self._sessions() as db:
            return work(db)

    async def run_once(self) -> int:
        """Plan, then send what is due; answers how many messages went out."""
        now = self._clock()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            await asyncio.to_thread(self._db, lambda db: outbox.prune(db, now))
        if self._online is not None and (
            self._offline_at is None or now - self._offline_at >= OFFLINE_EVERY
        ):
            self._offline_at = now
            online = set(self._online())  # read on the loop: presence is the loop's
            await asyncio.to_thread(
                self._db, lambda db: raise_offline_before_lessons(db, online, now)
            )

        def plan_then_due(db: Session) -> list[outbox.Delivery]:
            outbox.plan(db, now)
            return outbox.due(db, now)

        # one worker-thread hop a pass: this runs every second
        deliveries = await asyncio.to_thread(self._db, plan_then_due)
        if not deliveries:
            return 0
        gate = asyncio.Semaphore(CONCURRENCY)
        results = await asyncio.gather(*(self._deliver(gate, d) for d in deliveries))
        return sum(results)

    async def _deliver(self, gate: asyncio.Semaphore, delivery: outbox.Delivery) -> int:
        async with gate:
            error = None
            channel = self._channels.get(delivery.channel)
            try:
                if channel is None:
                    raise DeliveryError(f"no channel {delivery.channel!r} in this controller")
                await asyncio.wait_for(
                    channel.send(delivery.config, delivery.message), TIMEOUT_S + 5
                )
            except (DeliveryError, TimeoutError) as err:
                error = str(err) or type(err).__name__
            now = self._clock()
            if error is None:
                self.sent += 1
                await asyncio.to_thread(
                    self._db, lambda db: outbox.sent(db, delivery.outbox_id, now)
                )
                return 1
            self.failures += 1
            log.warning(
                "notification %d over %s (subscription %d) failed: %s",
                delivery.outbox_id,
                delivery.channel,
                delivery.subscription_id,
                error,
            )
            await asyncio.to_thread(
                self._db, lambda db: outbox.failed(db, delivery.outbox_id, error, now)
            )
            return 0
