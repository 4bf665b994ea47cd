"""The alert rules notifications rest on: loss and round trip raise only when sustained
for a minute, an upload open for an hour is stuck, a lost agent is offline until its next
heartbeat, and every kind has a severity."""

from __future__ import annotations

from datetime import timedelta

from notify_fixtures import T0
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.alerts import (
    active_alerts,
    raise_offline,
    record_heartbeat_alerts,
    severity,
)
from controller.db.models import Lesson, UploadSession


def _keys(db: sessionmaker[Session], at: object) -> set[str]:
    with db() as s:
        return {str(a["key"]) for a in active_alerts(s, at)}  # type: ignore[arg-type]


def _beat(db: sessionmaker[Session], health: dict[str, object], at: object) -> None:
    with db() as s:
        record_heartbeat_alerts(s, "city-101", health, at)  # type: ignore[arg-type]
        s.commit()


def test_loss_and_round_trip_raise_only_when_sustained_for_a_minute(
    db: sessionmaker[Session],
) -> None:
    bad = {"packet_loss_pct": 9.0, "rtt_ms": 350.0}
    _beat(db, bad, T0)
    _beat(db, bad, T0 + timedelta(seconds=30))
    assert _keys(db, T0) == set()
    _beat(db, {"packet_loss_pct": 1.0}, T0 + timedelta(seconds=40))  # a good moment resets
    _beat(db, bad, T0 + timedelta(seconds=50))
    _beat(db, bad, T0 + timedelta(seconds=100))
    assert _keys(db, T0) == set()
    _beat(db, bad, T0 + timedelta(seconds=110))
    assert _keys(db, T0) == {"packet_loss", "latency"}
    with db() as s:
        [doc, _] = active_alerts(s, T0 + timedelta(seconds=110))
        assert doc["first_seen"] == (T0 + timedelta(seconds=50)).isoformat()
    _beat(db, {"packet_loss_pct": 7.9, "rtt_ms": 300.0}, T0 + timedelta(seconds=120))
    assert _keys(db, T0) == set()  # at the thresholds: not over them


def test_an_upload_open_for_an_hour_is_stuck(db: sessionmaker[Session]) -> None:
    with db() as s:
        s.add(Lesson(id="L1", lead_classroom_id="city-101", start_at=T0, end_at=T0, created_at=T0))
        s.add(
            UploadSession(
                id="u1",
                lesson_id="L1",
                classroom_id="city-101",
                rel="cam/0001.mp4",
                key="k",
                size=10,
                sha256="0" * 64,
                backend_id="b",
                part_size=10,
                created_at=T0,
            )
        )
        s.commit()
    _beat(db, {"uploads_pending": 3}, T0 + timedelta(minutes=59))
    assert _keys(db, T0) == set()
    _beat(db, {"uploads_pending": 3}, T0 + timedelta(minutes=61))
    assert _keys(db, T0) == {"upload_stuck"}
    _beat(db, {"uploads_pending": 0}, T0 + timedelta(minutes=62))
    assert _keys(db, T0) == set()


def test_offline_until_the_next_heartbeat(db: sessionmaker[Session]) -> None:
    with db() as s:
        raise_offline(s, "city-101", "stopped sending heartbeats", T0)
        s.commit()
        raise_offline(s, "city-101", "stopped sending heartbeats", T0 + timedelta(minutes=1))
        s.commit()
        [doc] = active_alerts(s, T0)
        assert doc["key"] == "offline" and doc["severity"] == "critical"
        assert doc["first_seen"] == T0.isoformat()  # still the same raise
        assert len(s.scalars(select(Lesson)).all()) == 0
    _beat(db, {}, T0 + timedelta(minutes=2))
    assert _keys(db, T0) == set()


def test_every_rule_has_a_severity() -> None:
    assert severity("offline") == severity("not_ready:devices") == "critical"
    assert severity("device_lost:camera") == "critical"
    assert severity("mic_silent") == severity("disk_low") == severity("clock_offset") == "warning"
    assert severity("packet_loss") == severity("latency") == severity("upload_stuck") == "warning"
    assert severity("upload_backlog") == "info"


def test_a_lost_camera_is_one_alert_not_also_the_agents_summary() -> None:
    from controller.agents.alerts import alerts_from_health

    health = {
        "alerts": {"device_lost": "teacher lost: no frames", "mic_silent": "no sound"},
        "devices": {"teacher": {"state": "lost"}},
    }
    assert set(alerts_from_health(health, lesson_soon=False)) == {
        "device_lost:teacher",
        "mic_silent",
    }


def test_an_agent_offline_is_an_alert_only_as_its_lesson_nears(db: sessionmaker[Session]) -> None:
    from controller.agents.alerts import raise_offline_before_lessons

    with db() as s:
        for lid, start in (
            ("L-soon", T0 + timedelta(minutes=20)),
            ("L-late", T0 + timedelta(hours=3)),
        ):
            lead = "city-101" if lid == "L-soon" else "village-201"
            s.add(
                Lesson(
                    id=lid,
                    lead_classroom_id=lead,
                    start_at=start,
                    end_at=start + timedelta(minutes=40),
                    created_at=T0,
                )
            )
        s.commit()
        assert raise_offline_before_lessons(s, {"city-101"}, T0) == []
        assert raise_offline_before_lessons(s, set(), T0) == ["city-101"]
        [doc] = active_alerts(s, T0)
        assert doc["key"] == "offline" and "lesson L-soon starts" in str(doc["message"])
