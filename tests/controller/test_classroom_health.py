"""Classroom health history: sampled at most once a minute from heartbeats, pruned after
a week, and served by GET /api/v1/classrooms/{id}/health with clear 400/404 answers."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from helpers import bearer_headers, loopback_server_tls, loopback_session
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.health_history import HealthSampler, send_kbps
from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.http_api import HttpApi
from controller.db.models import ClassroomHealthSample, School
from controller.db.session import make_engine, migrate, sessions
from controller.recordings.uploads import UploadService
from controller.storage.local import LocalStorage

HEALTH: dict[str, object] = {
    "cpu_pct": 41.5,
    "mem_pct": 60.0,
    "temperature_c": 55.0,
    "audio_level_dbfs": -32.0,
    "rtt_ms": 12.0,
    "clock_offset_ms": -3.0,
    "devices": {"teacher": {"state": "ok", "detail": ""}},
    "media": [
        {"track": "teacher", "direction": "send", "bitrate_bps": 2_000_000},
        {"track": "mic", "direction": "send", "bitrate_bps": 48_000},
        {"track": "far", "direction": "recv", "bitrate_bps": 900_000},
    ],
}


@pytest.fixture
async def api(
    tmp_path: pathlib.Path,
) -> AsyncIterator[tuple[str, dict[str, str], sessionmaker[Session]]]:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    db: sessionmaker[Session] = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with db() as s:
        s.add(School(id="city", name="City School", network_profile="county-std"))
        add_classroom(s, "city-101", "City 101", "city", keys.public)
    uploads = UploadService(db, LocalStorage(tmp_path / "storage"), lambda a, b: None)
    http = HttpApi(db, uploads, keys, lambda: ["city-101"])
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    try:
        yield f"https://127.0.0.1:{http.port}/api/v1", bearer_headers(db, "inspector"), db
    finally:
        await http.stop()


def test_sampler_keeps_one_a_minute_and_prunes_after_a_week(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    db = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    sampler = HealthSampler()
    with db() as s:
        add_classroom(s, "city-101", "City 101", "city", keys.public)
        kept = [
            sampler.record(s, "city-101", HEALTH, t0 + timedelta(seconds=n * 20))
            for n in range(7)  # every 20 s for 2 minutes
        ]
        s.commit()
        assert kept == [True, False, False, True, False, False, True]
        # A week and an hour later the old samples are pruned as a new one is kept.
        assert sampler.record(s, "city-101", HEALTH, t0 + timedelta(days=7, hours=1))
        s.commit()
        assert s.scalar(select(func.count()).select_from(ClassroomHealthSample)) == 1
    assert send_kbps(HEALTH) == 2048.0
    assert send_kbps({"media": []}) is None


async def test_health_endpoint_and_inventory(
    api: tuple[str, dict[str, str], sessionmaker[Session]],
) -> None:
    base, headers, db = api
    now = datetime.now(UTC)
    sampler = HealthSampler()
    with db() as s:
        for minutes in (600, 90, 30, 1):  # 10 h ago is outside the default 6 h
            sampler.record(s, "city-101", HEALTH, now - timedelta(minutes=minutes))
        s.commit()
    async with loopback_session(headers=headers) as http:
        async with http.get(f"{base}/classrooms/city-101/health") as r:
            assert r.status == 200, await r.text()
            doc = await r.json()
        assert doc["hours"] == 6 and doc["every_s"] == 60
        assert len(doc["samples"]) == 3
        first = doc["samples"][0]
        assert first["cpu"] == 41.5 and first["temp"] == 55.0 and first["send_kbps"] == 2048.0
        assert first["audio_dbfs"] == -32.0 and first["clock_offset_ms"] == -3.0
        assert doc["samples"][0]["at"] < doc["samples"][-1]["at"]
        async with http.get(f"{base}/classrooms/city-101/health?hours=0.5") as r:
            assert len((await r.json())["samples"]) == 1
        async with http.get(f"{base}/classrooms/city-101/health?hours=24") as r:
            assert len((await r.json())["samples"]) == 4
        for bad in ("abc", "0", "-1", "169", "nan", "inf", "1e999"):
            async with http.get(f"{base}/classrooms/city-101/health?hours={bad}") as r:
                assert r.status == 400, bad
                message = (await r.json())["error"]
                assert "hours" in message and "168" in message, message
        async with http.get(f"{base}/classrooms/nowhere/health") as r:
            assert r.status == 404
            assert "'nowhere' does not exist" in (await r.json())["error"]
        async with http.get(f"{base}/classrooms/city-101") as r:
            room = await r.json()
        assert room["online"] is True and room["school"] == "city"
        assert room["network_profile"] == {"name": "county-std", "from": "school"}
        async with http.get(f"{base}/classrooms") as r:
            rooms = await r.json()
        assert rooms[0]["id"] == "city-101" and "agent_version" in rooms[0]
        async with http.get(f"{base}/classrooms/nowhere") as r:
            assert r.status == 404
