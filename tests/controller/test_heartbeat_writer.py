"""Heartbeats reach the database in batches: one transaction a second, however many beat."""

from __future__ import annotations

import asyncio
import pathlib
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.health_history import HealthSampler
from controller.agents.heartbeat_writer import HeartbeatWriter
from controller.db.models import AlertState, Classroom
from controller.db.session import make_engine, migrate, sessions
from protocols.messages import Heartbeat

ROOMS = [f"room-{i:02d}" for i in range(50)]


def _beat(seq: int) -> Heartbeat:
    return Heartbeat(seq=seq, cpu_pct=float(seq), mem_pct=1, disk_free_bytes=1, disk_pct=1)


@pytest.fixture
def db(tmp_path: pathlib.Path, db_url: str) -> Iterator[tuple[sessionmaker[Session], list[int]]]:
    url = db_url
    migrate(url)
    engine = make_engine(url)
    commits: list[int] = []

    def count(_conn: object) -> None:
        commits.append(1)

    # Every engine's commits: on SQLite the writer opens an engine of its own.
    event.listen(Engine, "commit", count)
    factory = sessions(engine)
    with factory() as s:
        s.add_all(Classroom(id=c, name=c, school="S", inventory=[], health={}) for c in ROOMS)
        s.commit()
    commits.clear()
    yield factory, commits
    event.remove(Engine, "commit", count)


def _no_offline(_db: Session, _cid: str, _at: datetime) -> None:
    return None


async def test_many_beats_are_one_transaction_with_each_rooms_newest(
    db: tuple[sessionmaker[Session], list[int]],
) -> None:
    factory, commits = db
    writer = HeartbeatWriter(factory, HealthSampler(), _no_offline)
    for seq in range(1, 5):
        for cid in ROOMS:
            writer.beat(cid, _beat(seq))
    assert writer.backlog == len(ROOMS)
    await writer.flush()
    assert len(commits) == 1
    assert writer.backlog == 0 and writer.written == len(ROOMS)
    with factory() as s:
        for room in s.query(Classroom).all():
            assert room.online is True
            assert room.health["seq"] == 4, room.id  # the newest, not the first


async def test_the_running_writer_commits_at_most_once_a_second(
    db: tuple[sessionmaker[Session], list[int]],
) -> None:
    factory, commits = db
    writer = HeartbeatWriter(factory, HealthSampler(), _no_offline, flush_every_s=1.0)
    await writer.start()
    loop = asyncio.get_running_loop()
    began = loop.time()
    seq = 0
    while loop.time() - began < 3.2:
        seq += 1
        for cid in ROOMS:
            writer.beat(cid, _beat(seq))
        await asyncio.sleep(0.02)
    await writer.stop()
    # ~150 beats a room over 3.2 s: three timed batches and the one stop() writes.
    assert seq > 50
    assert 2 <= len(commits) <= 4, commits
    with factory() as s:
        assert {r.health["seq"] for r in s.query(Classroom).all()} == {seq}


async def test_offline_replaces_a_pending_beat_and_is_dropped_if_the_room_came_back(
    db: tuple[sessionmaker[Session], list[int]],
) -> None:
    factory, _ = db
    offlined: list[str] = []

    def on_offline(_db: Session, cid: str, _at: datetime) -> None:
        offlined.append(cid)

    back = {"room-02"}
    writer = HeartbeatWriter(factory, HealthSampler(), on_offline, is_online=back.__contains__)
    for cid in ("room-01", "room-02"):
        writer.beat(cid, _beat(1))
    await writer.flush()
    writer.beat("room-01", _beat(2))
    writer.offline("room-01")  # after the beat: offline wins
    writer.offline("room-02")  # registered again before the batch was written
    await writer.flush()
    with factory() as s:
        assert s.get(Classroom, "room-01").online is False  # type: ignore[union-attr]
        assert s.get(Classroom, "room-02").online is True  # type: ignore[union-attr]
    assert offlined == ["room-01"]


async def test_one_failing_room_is_counted_and_the_rest_are_written(
    db: tuple[sessionmaker[Session], list[int]],
) -> None:
    factory, commits = db

    def on_offline(_db: Session, cid: str, _at: datetime) -> None:
        raise RuntimeError(f"{cid}: alert table unavailable")

    writer = HeartbeatWriter(factory, HealthSampler(), on_offline)
    writer.offline("room-03")
    writer.beat("room-04", _beat(7))
    writer.beat("gone-room", _beat(7))  # deleted since: skipped, not an error
    await writer.flush()
    assert writer.errors == 1 and len(commits) == 1
    with factory() as s:
        assert s.get(Classroom, "room-04").health["seq"] == 7  # type: ignore[union-attr]


async def test_a_failed_commit_keeps_the_batch_for_the_next_pass(
    db: tuple[sessionmaker[Session], list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    factory, _ = db
    writer = HeartbeatWriter(factory, HealthSampler(), _no_offline)
    writer.beat("room-05", _beat(1))
    writer.beat("room-06", _beat(1))

    def broken(_batch: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(writer, "_write", broken)
    with pytest.raises(OSError):
        await writer.flush()
    writer.beat("room-06", _beat(2))  # newer news while the write failed
    monkeypatch.undo()
    await writer.flush()
    with factory() as s:
        assert s.get(Classroom, "room-05").health["seq"] == 1  # type: ignore[union-attr]
        assert s.get(Classroom, "room-06").health["seq"] == 2  # type: ignore[union-attr]


class _HeldSampler(HealthSampler):
    """Holds the batch inside its last classroom until the test has looked."""

    def __init__(self, last: str) -> None:
        super().__init__()
        self.last = last
        self.inside = threading.Event()
        self.go_on = threading.Event()

    def record(
        self, db: Session, classroom_id: str, health: Mapping[str, object], now: datetime
    ) -> bool:
        if classroom_id == self.last:
            self.inside.set()
            self.go_on.wait(10)
        return super().record(db, classroom_id, health, now)


async def test_a_batch_is_one_transaction_no_room_is_seen_before_the_last_is_written(
    db: tuple[sessionmaker[Session], list[int]],
) -> None:
    """Another reader sees none of a batch until all of it commits (on SQLite the
    savepoints used to commit one by one, each room visible as soon as it was written)."""
    factory, _ = db
    sampler = _HeldSampler(last=ROOMS[-1])
    writer = HeartbeatWriter(factory, sampler, _no_offline)
    for cid in ROOMS:
        writer.beat(cid, _beat(9))
    flushing = asyncio.create_task(writer.flush())
    try:
        assert await asyncio.to_thread(sampler.inside.wait, 10)

        def seen() -> set[str]:
            with factory() as s:
                return {r.id for r in s.query(Classroom).all() if r.health.get("seq") == 9}

        assert await asyncio.to_thread(seen) == set()
    finally:
        sampler.go_on.set()
        await flushing
    assert await asyncio.to_thread(seen) == set(ROOMS)
    await writer.stop()


def _refuse_second_beat_of(factory: sessionmaker[Session], cid: str) -> None:
    """A trigger that makes the database itself refuse ``cid``'s row once it carries
    heartbeat 2, on either engine."""
    with factory() as s:
        if s.get_bind().dialect.name == "sqlite":
            s.execute(
                text(
                    "CREATE TRIGGER refuse_beat BEFORE UPDATE ON classroom "
                    f"WHEN NEW.id = '{cid}' AND json_extract(NEW.health, '$.seq') = 2 "
                    "BEGIN SELECT RAISE(ABORT, 'row refused by the test'); END"
                )
            )
        else:
            s.execute(
                text(
                    "CREATE FUNCTION refuse_beat() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    f"BEGIN IF NEW.id = '{cid}' AND NEW.health->>'seq' = '2' THEN "
                    "RAISE EXCEPTION 'row refused by the test'; END IF; RETURN NEW; END $$"
                )
            )
            s.execute(
                text(
                    "CREATE TRIGGER refuse_beat BEFORE UPDATE ON classroom "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_beat()"
                )
            )
        s.commit()


async def test_a_room_the_database_refuses_in_a_batch_loses_only_its_own_beat(
    db: tuple[sessionmaker[Session], list[int]],
) -> None:
    """The batch is written in a few statements; when one classroom's row makes them fail,
    the batch is written again classroom by classroom and only that one is lost."""
    factory, commits = db
    writer = HeartbeatWriter(factory, HealthSampler(), _no_offline)
    _refuse_second_beat_of(factory, "room-07")
    commits.clear()
    for seq in (1, 2):
        for cid in ROOMS:
            writer.beat(cid, _beat(seq))
        await writer.flush()
    assert writer.errors == 1 and writer.batches == 2
    assert 0 < writer.batch_seconds_max <= writer.batch_seconds
    assert len(commits) == 2  # the failed attempt was rolled back, not committed
    with factory() as s:
        seqs = {r.id: r.health["seq"] for r in s.query(Classroom).all()}
    assert seqs.pop("room-07") == 1
    assert set(seqs.values()) == {2}


async def test_a_long_alert_code_is_kept_cut_and_found_again(
    db: tuple[sessionmaker[Session], list[int]],
) -> None:
    """An agent's alert code longer than the stored key (100 characters) is kept cut, and
    its next sightings update that row: the classroom's heartbeats are not refused."""
    factory, _ = db
    writer = HeartbeatWriter(factory, HealthSampler(), _no_offline)
    long_code = "x" * 150
    for seq in (1, 2, 3):
        body = _beat(seq).model_copy(update={"alerts": {long_code: "agent's own alert"}})
        writer.beat("room-07", body)
        await writer.flush()
    assert writer.errors == 0
    with factory() as s:
        rows = s.scalars(select(AlertState).where(AlertState.classroom_id == "room-07")).all()
        [row] = [r for r in rows if r.key.startswith("x")]  # (disk_low is raised too)
        assert row.key == "x" * 100 and row.active
        assert s.get(Classroom, "room-07").health["seq"] == 3  # type: ignore[union-attr]


async def test_the_health_stored_is_the_heartbeat_as_json_quotes_and_all(
    db: tuple[sessionmaker[Session], list[int]],
) -> None:
    """The batch sends each health document as the JSON text it already is: what comes
    back is the heartbeat, whatever characters its strings hold."""
    factory, _ = db
    writer = HeartbeatWriter(factory, HealthSampler(), _no_offline)
    body = Heartbeat(
        seq=3,
        cpu_pct=12.5,
        mem_pct=1,
        disk_free_bytes=2**40,
        disk_pct=1,
        alerts={'say "hi"': "摄像头 \\ lost\n", "tab\t": "é"},
        readiness={"clock": "not measured"},
    )
    writer.beat("room-08", body)
    await writer.flush()
    with factory() as s:
        room = s.get(Classroom, "room-08")
        assert room is not None and room.online is True and room.last_seen_at is not None
        assert room.health == body.model_dump(mode="json")
