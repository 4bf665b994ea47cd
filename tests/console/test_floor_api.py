"""Floor control's API on a real controller: who may give the floor, and the refusals
(409, 422, 403, 413) that say what was wrong."""

from __future__ import annotations

from typing import Any

import aiohttp
from console.floor_seed import RECEIVERS, floor_lesson
from console.harness import PASSWORD, Console
from sqlalchemy import select

from controller.db.models import AuditEntry, LessonEvent


async def _put(console: Console, role: str, lesson: str, body: Any) -> tuple[int, Any]:
    url = f"{console.base}/api/v1/lessons/{lesson}/floor"
    async with (
        console.session(headers=console.bearer(role)) as http,
        http.put(url, json=body) as r,
    ):
        return r.status, await r.json()


async def _get(console: Console, role: str, lesson: str) -> tuple[int, Any]:
    url = f"{console.base}/api/v1/lessons/{lesson}/floor"
    async with console.session(headers=console.bearer(role)) as http, http.get(url) as r:
        return r.status, await r.json()


async def test_calling_on_a_room_raises_seq_and_is_logged_and_audited(console: Console) -> None:
    lesson = floor_lesson(console)
    status, doc = await _get(console, "inspector", lesson)
    assert status == 200
    assert doc["seq"] == 0 and doc["speaking"] is None and doc["can_change"] is False
    assert doc["lead"] == {"classroom_id": "city-101", "school": "City School", "name": "City 101"}
    assert [r["classroom_id"] for r in doc["rooms"]] == RECEIVERS
    assert doc["rooms"][1]["school"] == "Village School No. 2"  # the School row's name

    status, doc = await _put(console, "scheduler", lesson, {"speaking": "village-202"})
    assert status == 200, doc
    assert (doc["seq"], doc["speaking"], doc["muted"]) == (1, "village-202", [])
    assert doc["by"] == "console:scheduler"
    body = {"speaking": "village-201", "muted": ["village-202", "village-202"]}
    status, doc = await _put(console, "teacher", lesson, body)  # the lesson's own teacher
    assert status == 200, doc
    assert (doc["seq"], doc["speaking"], doc["muted"]) == (2, "village-201", ["village-202"])
    status, doc = await _put(console, "admin", lesson, {"speaking": None, "muted": []})
    assert status == 200 and doc["seq"] == 3 and doc["speaking"] is None

    status, doc = await _get(console, "teacher", lesson)
    assert (status, doc["seq"], doc["by"], doc["can_change"]) == (200, 3, "console:admin", True)
    with console.db() as s:
        events = s.scalars(select(LessonEvent.detail).where(LessonEvent.lesson_id == lesson))
        floors = [e for e in events if e.startswith("floor ")]
        audited = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "PUT /api/v1/lessons/{lesson}/floor")
        ).all()
    assert floors[1] == (
        "floor 2: village-201 has the floor; muted village-202 (by console:teacher)"
    )
    assert len(floors) == 3
    assert [(a.username, a.target) for a in audited][-1] == (
        "admin",
        f"/api/v1/lessons/{lesson}/floor",
    )


async def test_a_lesson_that_is_not_under_way_is_refused_with_409(console: Console) -> None:
    for state in ("scheduled", "recorded"):
        lesson = floor_lesson(console, state=state)
        status, doc = await _put(console, "scheduler", lesson, {"speaking": "village-201"})
        assert status == 409, doc
        assert f"is {state}" in doc["error"] and "preparing or live" in doc["error"]
    status, doc = await _put(console, "scheduler", "no-such", {"speaking": None})
    assert status == 404 and "does not exist" in doc["error"]


async def test_a_room_that_is_not_receiving_is_refused_with_422(console: Console) -> None:
    lesson = floor_lesson(console)
    for body in (
        {"speaking": "city-101"},  # the lead is not a receiving room
        {"speaking": None, "muted": ["village-201", "town-9"]},
    ):
        status, doc = await _put(console, "admin", lesson, body)
        assert status == 422, doc
        bad = body["speaking"] or "town-9"
        assert repr(bad) in doc["error"]
        assert "village-201, village-202" in doc["error"]  # the valid ones
    status, doc = await _get(console, "admin", lesson)
    assert doc["seq"] == 0  # nothing changed


async def test_malformed_bodies_name_the_field(console: Console) -> None:
    lesson = floor_lesson(console)
    for body, words in (
        ({}, "'speaking' is required"),
        ({"speaking": 3}, "field 'speaking'"),
        ({"speaking": None, "muted": "village-201"}, "field 'muted'"),
        ({"speaking": None, "duck_db": -6}, "unknown field(s) duck_db"),
        (["village-201"], "JSON object"),
    ):
        status, doc = await _put(console, "admin", lesson, body)
        assert status == 400 and words in doc["error"], (body, doc)


async def test_who_may_give_the_floor(console: Console) -> None:
    lesson = floor_lesson(console)
    for role in ("inspector", "technician"):
        status, doc = await _put(console, role, lesson, {"speaking": "village-201"})
        assert status == 403, (role, doc)
        assert f"role '{role}' may not PUT" in doc["error"]
    other = floor_lesson(console, teacher="someone-else")
    status, doc = await _put(console, "teacher", other, {"speaking": "village-201"})
    assert status == 403 and "only in the lessons they teach" in doc["error"]
    assert "'someone-else'" not in doc["error"] and "someone-else" in doc["error"]
    status, doc = await _get(console, "teacher", other)
    assert status == 200 and doc["can_change"] is False
    # A teacher reads lessons, not recordings or patrol.
    async with console.session(headers=console.bearer("teacher")) as http:
        for path in ("/api/v1/recordings", "/api/v1/live", "/api/v1/audit"):
            async with http.get(console.base + path) as r:
                assert r.status == 403, path


async def test_an_oversized_body_is_refused_before_it_is_read(console: Console) -> None:
    lesson = floor_lesson(console)
    huge = {"speaking": None, "muted": ["village-201"] * 2000}
    status, doc = await _put(console, "admin", lesson, huge)
    assert status == 413 and "larger than" in doc["error"]

    async def chunks() -> Any:  # no Content-Length: the limit still holds
        yield b'{"speaking": null, "muted": ['
        for _ in range(2000):
            yield b'"village-201",'
        yield b'"village-201"]}'

    async with console.session(headers=console.bearer("admin")) as http:
        url = f"{console.base}/api/v1/lessons/{lesson}/floor"
        async with http.put(url, data=chunks()) as r:
            assert r.status == 413


async def test_a_cookie_change_needs_csrf(console: Console) -> None:
    lesson = floor_lesson(console)
    async with console.session(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        login = {"username": "teacher", "password": PASSWORD}
        async with http.post(f"{console.base}/api/v1/session", json=login) as r:
            csrf = (await r.json())["csrf"]
        url = f"{console.base}/api/v1/lessons/{lesson}/floor"
        async with http.put(url, json={"speaking": "village-201"}) as r:
            assert r.status == 403 and "CSRF" in (await r.json())["error"]
        async with http.put(
            url, json={"speaking": "village-201"}, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert r.status == 200
        async with http.get(f"{console.base}/api/v1/openapi.json") as r:
            paths = (await r.json())["paths"]
    assert {"get", "put"} <= set(paths["/api/v1/lessons/{lesson}/floor"])
