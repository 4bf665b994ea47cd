"""Heartbeats and presence changes written in batches: at most one transaction a second.

Every agent beats every few seconds. Written one commit each, a province's agents would
queue on the database's lock, and the commits ran where they could stall the agents'
links. Here a heartbeat only replaces the classroom's pending one in memory (the newest
says all an older one did); a writer task commits whatever is pending once a second, in
one transaction on a worker thread. An "offline" waits in the same queue, so it is never
overtaken by an older heartbeat of the same classroom.

A batch is written in a few statements for all its classrooms (their rows in one
statement, their alerts through ``record_batch_alerts``), not an ORM object and a
savepoint each. Should that fail, the batch is written again classroom by classroom,
each in a savepoint: a failing classroom (a row the database refuses) is rolled back
alone, counted and logged; the others of the batch are written. A failed commit leaves
the batch pending for the next second unless newer news replaced it.

On SQLite the batches go through an engine of their own (``batch_engine``) that begins
each transaction explicitly: through pysqlite's default handling, the first classroom's
savepoint would itself begin the transaction, and each savepoint would commit alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, Text, bindparam, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.alert_batch import BeatHealth, record_batch_alerts
from controller.agents.alerts import record_heartbeat_alerts
from controller.agents.health_history import HealthSampler
from controller.db.models import Classroom
from controller.db.session import batch_engine, utcnow
from protocols.envelope import dumps
from protocols.messages import Heartbeat

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 1.0
_ROOMS = cast(Table, Classroom.__table__)
# One statement for the whole batch, no ORM objects or savepoints. The health goes as
# the JSON text pydantic writes, not a dict serialised again. SQLite (JSON kept as text):
# an executemany. PostgreSQL: one UPDATE joined to the batch sent as one JSON array (a
# round trip and a statement for the batch, not one a classroom).
_UPDATE_ROOM_SQLITE = (
    update(_ROOMS)
    .where(_ROOMS.c.id == bindparam("b_id"))
    .values(last_seen_at=bindparam("b_at"), online=True, health=bindparam("b_health", type_=Text))
)
_UPDATE_ROOMS_PG = text(
    "UPDATE classroom SET last_seen_at = v.at, online = true, health = v.health "
    "FROM json_to_recordset(CAST(:batch AS json)) AS v(id varchar, at timestamptz, health json) "
    "WHERE classroom.id = v.id"
)
_UPDATE_ROOM_OFFLINE = update(_ROOMS).where(_ROOMS.c.id == bindparam("b_id")).values(online=False)


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
        # Wall time of the batches' transactions (on SQLite, how long each held the write
        # lock that API writes queue behind): their sum and the longest.
        self.batch_seconds = 0.0
        self.batch_seconds_max = 0.0

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
        # Serialised before the transaction begins: on SQLite the batch holds the write
        # lock from its first statement, and every API write (an audit row, say) waits
        # for it; 2,000 heartbeats' JSON once held it for most of a batch.
        health = {
            cid: _health_text(item.body) for cid, item in batch.items() if isinstance(item, _Beat)
        }
        began = time.monotonic()
        try:
            with self._sessions() as db:
                self._write_batch(db, batch, health)
                db.commit()
        except Exception as err:  # noqa: BLE001 - find the bad row: one by one, isolated
            log.warning(
                "heartbeat batch of %d classrooms failed as a whole (%s: %s); writing it "
                "classroom by classroom",
                len(batch),
                type(err).__name__,
                err,
            )
            with self._sessions() as db:
                self._write_rows(db, batch)
                db.commit()
        took = time.monotonic() - began
        self.batch_seconds += took
        self.batch_seconds_max = max(self.batch_seconds_max, took)
        self.batches += 1
        self.written += len(batch)

    def _write_batch(
        self, db: Session, batch: dict[str, Pending], health: dict[str, tuple[str, dict[str, Any]]]
    ) -> None:
        """The whole batch in a few statements: the classrooms' rows in one statement,
        their alerts through ``record_batch_alerts``; offline marks (rare) one by one.
        ``health``: each heartbeat's health as JSON text and as a document."""
        known = set(db.scalars(select(Classroom.id).where(Classroom.id.in_(list(batch)))))
        beats: list[BeatHealth] = []
        texts: list[str] = []
        for cid, item in batch.items():
            if cid in known and isinstance(item, _Beat):
                doc, parsed = health[cid]
                beats.append(BeatHealth(cid, parsed, item.at))
                texts.append(doc)
        if beats:
            if db.get_bind().dialect.name == "sqlite":
                db.execute(
                    _UPDATE_ROOM_SQLITE,
                    [
                        {"b_id": b.classroom_id, "b_at": b.at, "b_health": t}
                        for b, t in zip(beats, texts, strict=True)
                    ],
                )
            else:
                # The batch as one JSON array: its health documents go in as they are.
                batch_doc = ",".join(
                    f'{{"id":{json.dumps(b.classroom_id)},"at":"{b.at.isoformat()}","health":{t}}}'
                    for b, t in zip(beats, texts, strict=True)
                )
                db.execute(_UPDATE_ROOMS_PG, {"batch": f"[{batch_doc}]"})
            record_batch_alerts(db, beats)
            for b in beats:
                self._history.record(db, b.classroom_id, b.health, b.at)
        for cid, item in batch.items():
            if cid in known and isinstance(item, _Offline):
                self._mark_offline(db, cid, item)

    def _write_rows(self, db: Session, batch: dict[str, Pending]) -> None:
        """Classroom by classroom, each in a savepoint: a row the database refuses is
        rolled back alone, counted and logged."""
        rooms = {r.id: r for r in db.query(Classroom).filter(Classroom.id.in_(list(batch))).all()}
        for cid, item in batch.items():
            room = rooms.get(cid)
            if room is None:
                continue  # deleted since it beat: nothing to keep
            if isinstance(item, _Offline):
                self._mark_offline(db, cid, item)
                continue
            try:
                with db.begin_nested():
                    room.last_seen_at = item.at
                    room.online = True
                    room.health = item.body.model_dump(mode="json")
                    record_heartbeat_alerts(db, cid, room.health, item.at)
                    self._history.record(db, cid, room.health, item.at)
            except Exception as err:  # noqa: BLE001 - one bad row must not lose the others
                self._failed(cid, "heartbeat", err)

    def _mark_offline(self, db: Session, cid: str, item: _Offline) -> None:
        if self._is_online(cid):
            return  # registered again since
        try:
            with db.begin_nested():
                db.execute(_UPDATE_ROOM_OFFLINE, {"b_id": cid})
                self._on_offline(db, cid, item.at)
        except Exception as err:  # noqa: BLE001 - one bad row must not lose the others
            self._failed(cid, "offline mark", err)

    def _failed(self, cid: str, what: str, err: Exception) -> None:
        self.errors += 1
        log.error(
            "classroom %s: its %s was not written (%s: %s); the next one will be",
            cid,
            what,
            type(err).__name__,
            err,
        )


def _health_text(body: Heartbeat) -> tuple[str, dict[str, Any]]:
    """A heartbeat's health as the JSON text stored and as the document alerts read."""
    # The document first, then its text: a fifth of the cost of pydantic's JSON parsed
    # back, and the same JSON values.
    doc = body.model_dump(mode="json")
    return dumps(doc).decode(), doc
