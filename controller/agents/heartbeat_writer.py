"""Heartbeats and presence changes written in batches: at most one transaction a second.

Every agent beats every few seconds. Written one commit each, a province's agents would
queue on the database's lock, and the commits ran where they could stall the agents'
links. Here a heartbeat only replaces the classroom's pending one in memory (the newest
says all an older one did); a writer task commits whatever is pending once a second, in
one transaction on a worker thread. An "offline" waits in the same queue, so it is never
overtaken by an older heartbeat of the same classroom.

A failing classroom (a row the database refuses) is rolled back alone, counted and
logged; the others of the batch are written. A failed commit leaves the batch pending
for the next second unless newer news replaced it.

On SQLite the batches go through an engine of their own (``batch_engine``) that begins
each transaction explicitly: through pysqlite's default handling, the first classroom's
savepoint would itself begin the transaction, and each savepoint would commit alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.alerts import record_heartbeat_alerts
from controller.agents.health_history import HealthSampler
from controller.db.models import Classroom
from controller.db.session import batch_engine, utcnow
from protocols.messages import Heartbeat

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 1.0


@dataclass(frozen=True)
class _Beat:
    body: Heartbeat
    at: datetime


@dataclass(frozen=True)
class _Offline:
    at: datetime


Pending = _Beat | _Offline


class HeartbeatWriter:
    """Coalesces each classroom's heartbeats and offline marks; commits them in batches."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        history: HealthSampler,
        on_offline: Callable[[Session, str, datetime], None],
        is_online: Callable[[str], bool] = lambda _cid: False,
        flush_every_s: float = FLUSH_EVERY_S,
    ) -> None:
        self._sessions = sessions
        self._own_engine: Engine | None = None
        bound = sessions.kw.get("bind") if sessions is not None else None
        if isinstance(bound, Engine):
            self._own_engine = batch_engine(bound)
            if self._own_engine is not None:
                self._sessions = sessionmaker(self._own_engine, expire_on_commit=False)
        self._history = history
        self._on_offline = on_offline
        self._is_online = is_online
        self._every = flush_every_s
        self._pending: dict[str, Pending] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.batches = 0  # transactions committed
        self.written = 0  # classrooms written, over all batches
        self.errors = 0  # classrooms whose row failed, and failed commits

    def beat(self, classroom_id: str, body: Heartbeat) -> None:
        """A heartbeat arrived: it replaces the classroom's pending news."""
        self._pending[classroom_id] = _Beat(body, utcnow())

    def offline(self, classroom_id: str) -> None:
        """Presence declared the classroom offline: this replaces its pending heartbeat."""
        self._pending[classroom_id] = _Offline(utcnow())

    @property
    def backlog(self) -> int:
        """Classrooms with news not yet written."""
        return len(self._pending)

    async def start(self) -> None:
        """Start the once-a-second writer."""
        self._task = asyncio.create_task(self._run(), name="heartbeat-writer")

    async def stop(self) -> None:
        """Write what is pending, then stop."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()
        if self._own_engine is not None:
            self._own_engine.dispose()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # a daemon carries on; the batch stays pending
                self.errors += 1
                log.exception("heartbeat batch not written; trying again in %.1f s", self._every)

    async def flush(self) -> None:
        """Write everything pending now, in one transaction on a worker thread."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, {}
            try:
                await asyncio.to_thread(self._write, batch)
            except BaseException:
                # Keep what no newer news replaced, for the next pass.
                for cid, item in batch.items():
                    self._pending.setdefault(cid, item)
                raise

    def _write(self, batch: dict[str, Pending]) -> None:
        with self._sessions() as db:
            rooms = {
                r.id: r for r in db.query(Classroom).filter(Classroom.id.in_(list(batch))).all()
            }
            for cid, item in batch.items():
                room = rooms.get(cid)
                if room is None:
                    continue  # deleted since it beat: nothing to keep
                try:
                    with db.begin_nested():
                        if isinstance(item, _Beat):
                            room.last_seen_at = item.at
                            room.online = True
                            room.health = item.body.model_dump(mode="json")
                            record_heartbeat_alerts(db, cid, room.health, item.at)
                            self._history.record(db, cid, room.health, item.at)
                        elif not self._is_online(cid):  # not registered again since
                            room.online = False
                            self._on_offline(db, cid, item.at)
                except Exception as err:  # noqa: BLE001 - one bad row must not lose the others
                    self.errors += 1
                    log.error(
                        "classroom %s: its %s was not written (%s: %s); the next one will be",
                        cid,
                        "heartbeat" if isinstance(item, _Beat) else "offline mark",
                        type(err).__name__,
                        err,
                    )
            db.commit()
        self.batches += 1
        self.written += len(batch)
