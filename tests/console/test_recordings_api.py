"""The recording search (filters, pages, validation) and asking to publish to the
resource library (admin and scheduler only, audited; listed as published once approved)."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from console.harness import Console
from console.recording_seed import seed_lesson, seed_recording
from sqlalchemy import insert

from controller.app.daemon import ControllerConfig
from controller.db.models import AuditEntry, Classroom, Lesson, Recording
from controller.db.session import make_engine, migrate, sessions
from controller.recordings.search import RecordingQuery, search

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def seeded(console: Console, controller_config: ControllerConfig) -> dict[str, str]:
    """Three lessons on two days, each recorded by its lead classroom."""
    storage = controller_config.storage_dir
    lessons = {
        "math": seed_lesson(
            console.db,
            "city-101",
            ["village-201"],
            T0,
            T0 + timedelta(seconds=6),
            subject="math",
            teacher="t-wang",
        ),
        "research": seed_lesson(
            console.db,
            "village-201",
            ["city-101"],
            T0 + timedelta(hours=2),
            T0 + timedelta(hours=2, seconds=6),
            kind="research",
            subject="chinese",
            teacher="t-li",
        ),
        "next_day": seed_lesson(
            console.db,
            "city-101",
            ["village-201"],
            T0 + timedelta(days=1),
            T0 + timedelta(days=1, seconds=6),
            subject="chinese",
            teacher="t-wang",
        ),
    }
    seed_recording(console.db, storage, lessons["math"], "city-101")
    seed_recording(console.db, storage, lessons["research"], "village-201")
    seed_recording(console.db, storage, lessons["next_day"], "city-101", segments=((0, 6),))
    return lessons


async def _search(console: Console, role: str = "inspector", **query: str) -> Any:
    async with (
        console.session(headers=console.bearer(role)) as http,
        http.get(f"{console.base}/api/v1/recordings", params=query) as r,
    ):
        body = await r.json()
        assert r.status == 200, body
        return body


async def test_search_filters_and_pages(console: Console, seeded: dict[str, str]) -> None:
    every = await _search(console)
    assert every["total"] == 3
    assert [x["lesson"] for x in every["recordings"]] == [
        seeded["next_day"],
        seeded["research"],
        seeded["math"],
    ]
    math = every["recordings"][2]
    assert math["classroom"] == "city-101" and math["school"] == "City School"
    assert math["track"] == "teacher" and math["teacher"] == "t-wang"
    assert math["coverage_pct"] == pytest.approx(83.3, abs=0.1)  # 5 of 6 s
    assert math["gaps"] == 1 and not math["published"]
    assert 5.5 < math["duration_s"] < 6.5
    assert math["url"] == f"/api/v1/recordings/{seeded['math']}/city-101/teacher.mp4"
    assert every["recordings"][0]["gaps"] == 0

    async def lessons(**q: str) -> list[str]:
        return [x["lesson"] for x in (await _search(console, **q))["recordings"]]

    assert await lessons(school="Village School") == [seeded["research"]]
    assert await lessons(teacher="t-wang") == [seeded["next_day"], seeded["math"]]
    assert await lessons(subject="chinese") == [seeded["next_day"], seeded["research"]]
    assert await lessons(kind="research") == [seeded["research"]]
    assert await lessons(**{"from": "2026-03-03"}) == [seeded["next_day"]]
    assert await lessons(**{"to": "2026-03-02"}) == [seeded["research"], seeded["math"]]
    assert await lessons(
        **{"from": "2026-03-02T02:00:00+00:00", "to": "2026-03-02T04:00:00+00:00"}
    ) == [seeded["research"]]
    assert await lessons(school="City School", subject="chinese") == [seeded["next_day"]]
    assert await lessons(school="Nowhere") == []
    page = await _search(console, limit="1", offset="1")
    assert page["total"] == 3 and [x["lesson"] for x in page["recordings"]] == [seeded["research"]]


async def test_search_refuses_bad_queries(console: Console) -> None:
    async with console.session(headers=console.bearer("inspector")) as http:
        for query, words in (
            ({"from": "yesterday"}, "neither a date"),
            ({"limit": "0"}, "out of range"),
            ({"offset": "x"}, "not an integer"),
            ({"from": "2026-03-04", "to": "2026-03-02"}, "after"),
        ):
            async with http.get(f"{console.base}/api/v1/recordings", params=query) as r:
                assert r.status == 400 and words in (await r.json())["error"], query
    async with (
        console.session() as http,
        http.get(f"{console.base}/api/v1/recordings") as r,
    ):
        assert r.status == 401


async def test_publish_is_for_schedulers_and_audited(
    console: Console, seeded: dict[str, str]
) -> None:
    path = f"/api/v1/recordings/{seeded['math']}/city-101/teacher/publish"
    for role in ("inspector", "technician"):
        async with (
            console.session(headers=console.bearer(role)) as http,
            http.post(console.base + path) as r,
        ):
            assert r.status == 403, role
    async with console.session(headers=console.bearer("scheduler")) as http:
        async with http.post(console.base + path) as r:
            doc = await r.json()
            assert r.status == 200, doc
            # A request to the resource library: pending until a reviewer approves it.
            assert doc["status"] == "pending" and doc["requested_by"] == "scheduler"
            assert not doc["published"] and doc["metadata"]["subject"] == "math"
        async with http.post(console.base + path) as r:  # idempotent
            assert r.status == 200 and (await r.json())["id"] == doc["id"]
        missing = f"/api/v1/recordings/{seeded['math']}/city-101/nope/publish"
        async with http.post(console.base + missing) as r:
            assert r.status == 404 and "no recording" in (await r.json())["error"]
    [row] = [x for x in (await _search(console))["recordings"] if x["library_pending"]]
    assert row["lesson"] == seeded["math"] and row["track"] == "teacher"
    assert not [x for x in (await _search(console))["recordings"] if x["published"]]
    async with (
        console.session(headers=console.bearer("inspector")) as http,
        http.post(
            f"{console.base}/api/v1/library/items/{doc['id']}/review", json={"decision": "approve"}
        ) as r,
    ):
        assert r.status == 200, await r.text()
    published = [x for x in (await _search(console))["recordings"] if x["published"]]
    assert [x["lesson"] for x in published] == [seeded["math"]]
    with console.db() as s:
        rows = s.query(AuditEntry).filter(AuditEntry.target == path).all()
        assert rows and rows[0].username == "scheduler"
    async with (
        console.session(headers=console.bearer("inspector")) as http,
        http.get(f"{console.base}/api/v1/openapi.json") as r,
    ):
        paths = (await r.json())["paths"]
        assert "/api/v1/recordings" in paths
        assert "/api/v1/recordings/{lesson}/{classroom}/{track}/publish" in paths


def test_search_filters_ten_thousand_lessons(tmp_path: pathlib.Path) -> None:
    """10,000 lessons with one recording each: a filtered page and its count are quick."""
    url = f"sqlite:///{tmp_path / 'big.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    rooms = [(f"room-{i}", f"School {i % 20}") for i in range(100)]
    with engine.begin() as conn:
        conn.execute(
            insert(Classroom),
            [{"id": r, "name": r, "school": s} for r, s in rooms],
        )
        lessons, recordings = [], []
        for n in range(10_000):
            room = rooms[n % 100][0]
            start = now + timedelta(minutes=45 * n)
            lessons.append(
                {
                    "id": f"L{n:05d}",
                    "kind": ("synchronous", "research", "delivery")[n % 3],
                    "lead_classroom_id": room,
                    "start_at": start,
                    "end_at": start + timedelta(minutes=40),
                    "created_at": now,
                    "subject": ("math", "chinese", "english", "music")[n % 4],
                    "teacher_id": f"t-{n % 300}",
                }
            )
            recordings.append(
                {
                    "lesson_id": f"L{n:05d}",
                    "classroom_id": room,
                    "track": "teacher",
                    "kind": "video",
                    "path": "x",
                    "codec": "h264",
                    "duration_s": 2400.0,
                    "segments": 1,
                    "sha256": "0" * 64,
                    "created_at": now,
                }
            )
        conn.execute(insert(Lesson), lessons)
        conn.execute(insert(Recording), recordings)
    db = sessions(engine)
    queries = [
        {},
        {"school": "School 3"},
        {"teacher": "t-6", "subject": "english"},
        {"kind": "research", "from": "2026-04-01", "to": "2026-05-01", "offset": "20"},
    ]
    # Only correctness here: page speed is measured by scripts/bench-console.
    with db() as s:
        for query in queries:
            doc = search(s, RecordingQuery.parse(query))
            assert doc["total"] > 0 and doc["recordings"], query
