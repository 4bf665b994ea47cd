"""The heartbeat writer's batched alert path keeps the same rows as the per-classroom one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.alert_batch import BeatHealth, record_batch_alerts
from controller.agents.alerts import acknowledge, raise_alert, record_heartbeat_alerts, silence
from controller.db.models import AlertState, Classroom, Lesson, LessonReceiver, UploadSession
from controller.db.session import as_utc, make_engine, migrate, sessions

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SIDES = ("row", "batch")
ROOMS = 8
LOST = {"teacher": {"state": "lost", "detail": "unplugged"}, "mic": {"state": "ok"}}
LOSSY = [{"track": "teacher", "direction": "send", "loss_pct": 12.0, "rtt_ms": 20.0}]


def _health(i: int, step: int) -> dict[str, object]:
    """Classroom ``i``'s health at ``step``: alerts that come, last, go and come back."""
    health: dict[str, object] = {"cpu_pct": float(step), "disk_pct": 20.0}
    if i == 0 and step != 3:
        health["devices"] = LOST  # raised, kept, cleared at 3, raised again
    if i == 1 and step >= 1:
        health["media"] = LOSSY  # sustained: pending, then active after a minute
    if i == 2 and step in (1, 2, 3):
        health["rtt_ms"] = 900.0 if step != 2 else 10.0  # pending, cleared, pending again
    if i in (3, 5, 6):
        health["readiness"] = {"camera": "camera lost"}  # 3 leads, 5 receives, 6 has none
    if i == 4:
        health["uploads_pending"] = 4 if step != 3 else 0
    if i == 7:
        health["alerts"] = {"disk_low": "agent says disk low"} if step % 2 == 0 else {}
        health["disk_pct"] = 95.0 if step >= 3 else 20.0
    return health


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    migrate(db_url)
    engine = make_engine(db_url)
    made = sessions(engine)
    with made() as s:
        for side in SIDES:
            rooms = [f"{side}-{i}" for i in range(ROOMS)]
            s.add_all(Classroom(id=c, name=c, school="S", inventory=[], health={}) for c in rooms)
            s.flush()
            s.add_all(
                [
                    Lesson(
                        id=f"{side}-L3",
                        lead_classroom_id=f"{side}-3",
                        start_at=T0 + timedelta(minutes=20),
                        end_at=T0 + timedelta(minutes=65),
                        created_at=T0,
                    ),
                    Lesson(
                        id=f"{side}-L5",
                        lead_classroom_id=f"{side}-6",
                        start_at=T0 - timedelta(minutes=5),
                        end_at=T0 + timedelta(minutes=40),
                        created_at=T0,
                    ),
                    # Over before the heartbeats: no alert for its lead.
                    Lesson(
                        id=f"{side}-L6",
                        lead_classroom_id=f"{side}-6",
                        start_at=T0 - timedelta(hours=3),
                        end_at=T0 - timedelta(hours=2),
                        created_at=T0,
                        state="done",
                    ),
                ]
            )
            s.flush()
            s.add(LessonReceiver(lesson_id=f"{side}-L5", classroom_id=f"{side}-5"))
            s.add(
                UploadSession(
                    id=f"{side}-U4",
                    lesson_id=f"{side}-L3",
                    classroom_id=f"{side}-4",
                    rel="teacher/1.ts",
                    key="k",
                    size=1,
                    sha256="0" * 64,
                    backend_id="b",
                    part_size=1,
                    created_at=T0 - timedelta(minutes=50),
                )
            )
        s.commit()
    yield made
    engine.dispose()


def _rows(s: Session, side: str) -> dict[tuple[str, str], tuple[object, ...]]:
    out: dict[tuple[str, str], tuple[object, ...]] = {}
    for r in s.scalars(select(AlertState).where(AlertState.classroom_id.like(f"{side}-%"))):
        times = (r.first_seen, r.last_seen, r.acknowledged_at, r.silenced_until, r.pending_since)
        out[(r.classroom_id.split("-", 1)[1], r.key)] = (
            r.message,
            r.active,
            r.acknowledged_by,
            *(as_utc(t) if t is not None else None for t in times),
        )
    return out


def test_a_mixed_batch_gives_the_rows_the_per_classroom_path_gives(
    factory: sessionmaker[Session],
) -> None:
    """Raised, kept, cleared, raised again; sustained kinds pending then active; lessons
    led, received and over; an upload stuck once it is an hour old; acknowledgements,
    silences and controller-raised alerts kept: the same rows either way."""
    steps = [T0 + timedelta(seconds=s) for s in (0, 30, 70, 140, 200, 660)]
    with factory() as s:
        for step, at in enumerate(steps):
            beats = []
            for i in range(ROOMS):
                # Each classroom's heartbeat arrived a little apart within the batch.
                when = at + timedelta(milliseconds=37 * i)
                record_heartbeat_alerts(s, f"row-{i}", _health(i, step), when)
                beats.append(BeatHealth(f"batch-{i}", _health(i, step), when))
            record_batch_alerts(s, beats)
            s.commit()
            if step == 1:
                for side in SIDES:
                    raise_alert(s, f"{side}-0", "key_replaced", "key changed", at)
                    row = s.scalar(
                        select(AlertState).where(
                            AlertState.classroom_id == f"{side}-0",
                            AlertState.key == "device_lost:teacher",
                        )
                    )
                    assert row is not None
                    acknowledge(s, str(row.id), "tech", at)
                    silence(s, str(row.id), 2, "tech", at)
            # Afresh: the batched path writes through Core, past this session's objects.
            s.expire_all()
            per_row, batched = _rows(s, "row"), _rows(s, "batch")
            assert batched == per_row, f"step {step}"
        final = _rows(s, "batch")
    keys = {k for k, v in final.items() if v[1]}
    assert ("0", "device_lost:teacher") in keys and ("0", "key_replaced") in keys
    assert ("1", "packet_loss") in keys  # lasted past its minute
    assert ("3", "not_ready:camera") in keys and ("5", "not_ready:camera") in keys
    assert ("6", "not_ready:camera") in keys  # the lesson under way, not the one over
    assert ("4", "upload_stuck") in keys  # 50 min open at T0: stuck after 10 more
    assert ("2", "latency") not in keys and ("2", "latency") in final  # pending, then cleared
    assert ("7", "disk_low") in keys


def test_a_batch_of_nothing_touches_nothing(factory: sessionmaker[Session]) -> None:
    with factory() as s:
        record_batch_alerts(s, [])
        record_batch_alerts(s, [BeatHealth("batch-0", {"cpu_pct": 1.0}, T0)])
        s.commit()
        assert s.scalars(select(AlertState)).all() == []
