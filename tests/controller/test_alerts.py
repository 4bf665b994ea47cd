"""Alerts from heartbeats: raised, kept with their first sighting, cleared, raised again."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from controller.agents.alerts import (
    acknowledge,
    active_alerts,
    alerts_from_health,
    record_heartbeat_alerts,
    silence,
)
from controller.common.errors import InvalidRequest, NotFound
from controller.db.models import AlertState, Classroom
from controller.db.session import make_engine, migrate, sessions

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_health_numbers_become_alerts_over_their_thresholds() -> None:
    health = {
        "alerts": {"network": "uplink saturated"},
        "devices": {"cam": {"state": "lost"}, "mic": {"state": "ok"}},
        "readiness": {"camera": "camera lost"},
        "disk_pct": 95.0,
        "disk_free_bytes": 10 * 1024**3,
        "uploads_pending": 50,
        "clock_offset_ms": -900.0,
        "rtt_ms": 20.0,
        "packet_loss_pct": 9.0,
    }
    keys = set(alerts_from_health(health, lesson_soon=False))
    assert keys == {
        "network",
        "device_lost:cam",
        "disk_low",
        "upload_backlog",
        "clock_offset",
        "packet_loss",
    }
    assert "not_ready:camera" in alerts_from_health(health, lesson_soon=True)
    assert alerts_from_health({"disk_pct": 10.0, "disk_free_bytes": 50 * 1024**3}, True) == {}


def test_alert_rows_follow_heartbeats(tmp_path: pathlib.Path, db_url: str) -> None:
    url = db_url
    migrate(url)
    db = sessions(make_engine(url))
    lost = {"devices": {"cam": {"state": "lost"}}}
    with db() as s:
        s.add(Classroom(id="c1", name="C1", school="S", inventory=[], health={}))
        s.commit()
        record_heartbeat_alerts(s, "c1", lost, T0)
        s.commit()
        record_heartbeat_alerts(s, "c1", lost, T0 + timedelta(minutes=5))
        s.commit()
        [row] = s.scalars(select(AlertState)).all()
        assert row.first_seen.replace(tzinfo=UTC) == T0 and row.active
        [doc] = active_alerts(s, T0 + timedelta(minutes=10))
        assert doc["age_s"] == 600 and doc["kind"] == "device_lost"

        acknowledge(s, str(row.id), "tech", T0 + timedelta(minutes=6))
        silenced = silence(s, str(row.id), 2, "tech", T0 + timedelta(minutes=6))
        assert silenced["silenced"] is True and silenced["acknowledged_by"] == "tech"
        with pytest.raises(InvalidRequest, match="hours"):
            silence(s, str(row.id), -1, "tech", T0)
        with pytest.raises(NotFound, match="alert"):
            acknowledge(s, "999", "tech", T0)

        record_heartbeat_alerts(s, "c1", {}, T0 + timedelta(minutes=7))
        s.commit()
        assert active_alerts(s, T0 + timedelta(minutes=7)) == []
        record_heartbeat_alerts(s, "c1", lost, T0 + timedelta(minutes=9))
        s.commit()
        [again] = active_alerts(s, T0 + timedelta(minutes=9))
        assert again["age_s"] == 0 and again["acknowledged_by"] is None
        assert again["silenced"] is True  # the maintenance silence outlives the flap


def test_track_loss_and_media_round_trip_from_rtcp_become_alerts() -> None:
    from controller.agents.alerts import alerts_from_health

    health = {
        "media": [
            {"track": "teacher", "direction": "send", "loss_pct": 0.5, "rtt_ms": 420.0},
            {"track": "lead-teacher", "direction": "recv", "loss_pct": 9.5},
        ]
    }
    found = alerts_from_health(health, lesson_soon=False)
    assert "9.5% of packets lost on recv track lead-teacher" in found["packet_loss"]
    assert "media round trip to the relay is 420 ms" in found["latency"]
