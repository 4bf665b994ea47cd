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


def _quiet_beat(seq: int, **extra: object) -> Heartbeat:
    """An idle, healthy classroom's heartbeat: nothing in it raises an alert."""
    fields: dict[str, object] = {
        "seq": seq,
        "cpu_pct": 5.0 + seq,
        "mem_pct": 30.0,
        "disk_free_bytes": 400 * 10**9,
        "disk_pct": 20.0,
    }
    fields.update(extra)
    return Heartbeat.model_validate(fields)


def _stored(factory: sessionmaker[Session], cid: str) -> tuple[int, datetime | None]:
    with factory() as s:
        room = s.get(Classroom, cid)
        assert room is not None
        return room.health["seq"], room.last_seen_at


async def test_a_quiet_classroom_is_refreshed_at_most_every_quiet_interval(
    db: tuple[sessionmaker[Session], list[int]],
) -> None:
    factory, _commits = db
    writer = HeartbeatWriter(factory, HealthSampler(), _no_offline, quiet_refresh_s=0.6)
    writer.beat("room-00", _quiet_beat(1))
    await writer.flush()
    assert _stored(factory, "room-00")[0] == 1  # the first heartbeat is always written
    writer.beat("room-00", _quiet_beat(2))
    await writer.flush()
    assert _stored(factory, "room-00")[0] == 1, "a quiet beat within the interval is skipped"
    assert writer.quiet_skipped == 1 and writer.written == 1
    await asyncio.sleep(0.7)
    writer.beat("room-00", _quiet_beat(3))
    await writer.flush()
    assert _stored(factory, "room-00")[0] == 3, "past the interval the row is refreshed"
    assert writer.written == 2


async def test_an_alert_and_its_clearing_are_written_at_once(
    db: tuple[sessionmaker[Session], list[int]],
) -> None:
    factory, _commits = db
    writer = HeartbeatWriter(factory, HealthSampler(), _no_offline, quiet_refresh_s=60.0)
    writer.beat("room-01", _quiet_beat(1))
    await writer.flush()
    # The disk fills: not quiet, so written within the next batch, with its alert.
    writer.beat("room-01", _quiet_beat(2, disk_pct=97.0, disk_free_bytes=10**8))
    await writer.flush()
    assert _stored(factory, "room-01")[0] == 2
    with factory() as s:
        alert = s.scalars(select(AlertState).where(AlertState.classroom_id == "room-01")).one()
        assert alert.key == "disk_low" and alert.active
    # Space freed: quiet again, but the last written beat was not, so this one is written
    # and the alert clears.
    writer.beat("room-01", _quiet_beat(3))
    await writer.flush()
    assert _stored(factory, "room-01")[0] == 3
    with factory() as s:
        alert = s.scalars(select(AlertState).where(AlertState.classroom_id == "room-01")).one()
        assert not alert.active
    writer.beat("room-01", _quiet_beat(4))
    await writer.flush()
    assert _stored(factory, "room-01")[0] == 3 and writer.quiet_skipped == 1


@pytest.mark.parametrize(
    "busy",
    [
        {"lesson_id": "L1"},
        {"readiness": {"camera": "camera 'teacher' lost"}},
        {"uploads_pending": 2},
        {"alerts": {"agent_own": "the agent says so"}},
        {"media": [{"track": "teacher", "direction": "send", "kind": "video"}]},
    ],
    ids=["in-lesson", "not-ready", "uploads", "agent-alert", "media"],
)
async def test_a_classroom_with_anything_under_way_is_written_every_beat(
    db: tuple[sessionmaker[Session], list[int]], busy: dict[str, object]
) -> None:
    factory, _commits = db
    writer = HeartbeatWriter(factory, HealthSampler(), _no_offline, quiet_refresh_s=60.0)
    for seq in (1, 2, 3):
        writer.beat("room-02", _quiet_beat(seq, **busy))
        await writer.flush()
        assert _stored(factory, "room-02")[0] == seq
    assert writer.quiet_skipped == 0


async def test_a_registration_makes_the_next_quiet_beat_written(
    db: tuple[sessionmaker[Session], list[int]],
) -> None:
    """An agent that moved to another controller and back: this controller's memory of
    its row is stale, so its next heartbeat is written whatever it says."""
    factory, _commits = db
    writer = HeartbeatWriter(factory, HealthSampler(), _no_offline, quiet_refresh_s=60.0)
    writer.beat("room-03", _quiet_beat(1))
    await writer.flush()
    with factory() as s:  # another controller wrote the row meanwhile
        room = s.get(Classroom, "room-03")
        assert room is not None
        room.health = {"seq": 99}
        s.commit()
    writer.forget("room-03")
    writer.beat("room-03", _quiet_beat(2))
    await writer.flush()
    assert _stored(factory, "room-03")[0] == 2
