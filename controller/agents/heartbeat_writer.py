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

A quiet classroom is not written at every heartbeat. When its heartbeat raises no alert,
reports no readiness problem or waiting upload, and no lesson, track or live push is under
way, and its last written heartbeat was quiet too, its row is refreshed at most every
``QUIET_REFRESH_S``: an idle, healthy classroom's figures (CPU, temperature) and
"last heartbeat" on the console may be that old. Anything else is written in the next
batch: the first heartbeat after a registration, each change into or out of quiet, and
every heartbeat of a classroom in a lesson (patrol, bandwidth and live pushes read them).
At a province's 10,000 mostly idle classrooms this is most of the batch's rows.

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
from controller.agents.alerts import alerts_from_health, record_heartbeat_alerts
from controller.agents.health_history import HealthSampler
from controller.db.models import Classroom
from controller.db.session import batch_engine, utcnow
from protocols.envelope import dumps
from protocols.messages import Heartbeat

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 1.0
# How old a quiet classroom's stored heartbeat may grow (three beats at the default 5 s).
# ``controller.cluster.online`` counts this in its window, so it is no reason to call a
# classroom offline.
QUIET_REFRESH_S = 15.0
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
        quiet_refresh_s: float = QUIET_REFRESH_S,
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
        self._quiet_refresh_s = quiet_refresh_s
        # Each classroom's last committed heartbeat: when (monotonic), and whether quiet.
        self._written: dict[str, tuple[float, bool]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.batches = 0  # transactions committed
        self.written = 0  # classrooms written, over all batches
        self.quiet_skipped = 0  # quiet heartbeats not written (their row was fresh enough)
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

    def forget(self, classroom_id: str) -> None:
        """The classroom registered (here, perhaps after another controller wrote its
        row): its next heartbeat is written whatever it says."""
        self._written.pop(classroom_id, None)

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
        now = time.monotonic()
        health: dict[str, tuple[str, dict[str, Any]]] = {}
        quiet: dict[str, bool] = {}
        for cid, item in batch.items():
            if not isinstance(item, _Beat):
                continue
            doc = item.body.model_dump(mode="json")
            quiet[cid] = _quiet(doc)
            last = self._written.get(cid)
            if (
                quiet[cid]
                and last is not None
                and last[1]
                and now - last[0] < self._quiet_refresh_s
            ):
                self.quiet_skipped += 1
                continue
            health[cid] = (dumps(doc).decode(), doc)
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
            for cid in batch:
                self._written.pop(cid, None)
            with self._sessions() as db:
                self._write_rows(db, batch)
                db.commit()
        else:
            for cid in health:
                self._written[cid] = (now, quiet[cid])
            for cid, item in batch.items():
                if isinstance(item, _Offline):
                    self._written.pop(cid, None)
        took = time.monotonic() - began
        self.batch_seconds += took
        self.batch_seconds_max = max(self.batch_seconds_max, took)
        self.batches += 1
        self.written += len(batch) - (len(quiet) - len(health))

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
            if cid in known and isinstance(item, _Beat) and cid in health:
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


def _quiet(doc: dict[str, Any]) -> bool:
    """Whether a heartbeat's health says nothing the next second needs: no alert it raises
    (readiness counted, as if a lesson were near), no upload waiting, no lesson, track or
    live push under way."""
    if doc.get("lesson_id") or doc.get("media") or doc.get("pushes"):
        return False
    if doc.get("uploads_pending") or doc.get("readiness"):
        return False
    return not alerts_from_health(doc, True)
