"""The notification dispatcher: a task beside the controller's event loop work that plans
messages from the alerts and sends them, off the critical path (database work in worker
threads, every send with a timeout, a failing channel retried with backoff)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from controller.agents.alerts import raise_offline_before_lessons
from controller.db.session import utcnow
from controller.notify import outbox
from controller.notify.channels import Channel, DeliveryError, RateLimited
from controller.notify.sender import MARGIN, WINDOW, RobotRateLimit, Sender, robot_key

log = logging.getLogger(__name__)
T = TypeVar("T")

INTERVAL_S = 1.0
PRUNE_EVERY = timedelta(hours=1)
OFFLINE_EVERY = timedelta(seconds=30)
CONCURRENCY = 4
_REFUSED = datetime.min.replace(tzinfo=UTC)  # _deliver's answer for a robot's refusal


class NotifyDispatcher:
    """Plans and sends alert messages; ``start``/``stop`` run it as a task, and
    ``run_once`` does one pass (tests drive it with their own clock).

    Messages to one group robot go one after another, oldest first, and only as many as
    its rate limit leaves room for; the rest stay in the outbox, due when there is room
    (held, not failed)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        channels: Mapping[str, Channel] | None = None,
        clock: Callable[[], datetime] = utcnow,
        interval_s: float = INTERVAL_S,
        online: Callable[[], Iterable[str]] | None = None,
        limit: RobotRateLimit | None = None,
        leads: Callable[[], bool] = lambda: True,
    ) -> None:
        self._sessions = sessions
        # Several controllers: only the orchestrator's leader plans and sends (each would
        # send the same outbox, and a follower's presence sees only its own agents).
        self._leads = leads
        self.sender = Sender(channels, clock, limit)
        self._clock = clock
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._pruned_at: datetime | None = None
        # The agents online now (presence): classrooms not among them with a lesson near
        # are raised offline on each pass, at most every OFFLINE_EVERY.
        self._online = online
        self._offline_at: datetime | None = None
        self._seeded = False
        self.sent = 0
        self.failures = 0
        self.held = 0  # messages left in the outbox for a robot's rate limit

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
                if self._leads():
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
            self.sender.limit.forget_idle(now)
        if not self._seeded:  # a restart: what went to each robot in the last minute counts
            self._seeded = True
            since = now - WINDOW - MARGIN
            recent = await asyncio.to_thread(self._db, lambda db: outbox.sent_since(db, since))
            self.sender.limit.seed(recent)
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
        # One queue per robot, in the outbox's order; e-mails each on their own.
        queues: dict[str, list[outbox.Delivery]] = {}
        for d in deliveries:
            key = robot_key(d.channel, d.config) or f"message {d.outbox_id}"
            queues.setdefault(key, []).append(d)
        gate = asyncio.Semaphore(CONCURRENCY)
        results = await asyncio.gather(*(self._send_queue(gate, q) for q in queues.values()))
        return sum(results)

    async def _hold(self, queue: list[outbox.Delivery], until: datetime) -> None:
        ids = [d.outbox_id for d in queue]
        self.held += len(ids)
        await asyncio.to_thread(self._db, lambda db: outbox.hold(db, ids, until))

    async def _send_queue(self, gate: asyncio.Semaphore, queue: list[outbox.Delivery]) -> int:
        """Send one robot's messages in order while it has room; hold the rest."""
        done = 0
        async with gate:
            for n, delivery in enumerate(queue):
                until = self.sender.limit.take(delivery.channel, delivery.config, self._clock())
                if until is None:
                    retry = await self._deliver(delivery)
                    if retry is None:
                        done += 1
                        continue
                    if retry is _REFUSED:
                        until = self._clock() + WINDOW + MARGIN  # the robot said it is full
                        await self._hold(queue[n:], until)
                        break
                    # A failed robot: the rest wait behind the message it failed, in order.
                    if robot_key(delivery.channel, delivery.config) is not None:
                        await self._hold(queue[n + 1 :], retry)
                        break
                    continue
                await self._hold(queue[n:], until)
                break
        return done

    async def _deliver(self, delivery: outbox.Delivery) -> datetime | None:
        """None when sent; else when it is tried again (``_REFUSED``: the robot refused
        for its rate limit and it waits without counting as a failure)."""
        error = None
        try:
            await self.sender.send(delivery.channel, delivery.config, delivery.message)
        except RateLimited as err:
            log.info("notification %d held: %s", delivery.outbox_id, err)
            return _REFUSED
        except DeliveryError as err:
            error = str(err) or type(err).__name__
        now = self._clock()
        if error is None:
            self.sent += 1
            await asyncio.to_thread(self._db, lambda db: outbox.sent(db, delivery.outbox_id, now))
            return None
        self.failures += 1
        log.warning(
            "notification %d over %s (subscription %d) failed: %s",
            delivery.outbox_id,
            delivery.channel,
            delivery.subscription_id,
            error,
        )
        return await asyncio.to_thread(
            self._db, lambda db: outbox.failed(db, delivery.outbox_id, error, now)
        )
