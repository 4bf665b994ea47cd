"""Least privilege: an account limited to one school sees that school's classrooms,
lessons and recordings only (404 for the others, lists filtered); the county sees all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from console.harness import Console
from console.recording_seed import seed_lesson, seed_recording

from controller.auth.accounts import add_user, create_api_token
from controller.auth.scope import set_school
from controller.daemon import ControllerConfig
from controller.errors import InvalidRequest
from controller.keys import ServerKeys
from controller.registry import add_classroom

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def county(console: Console, controller_config: ControllerConfig) -> dict[str, str]:
    """A lesson joining both schools ("shared", recorded in both rooms), one inside City
    School ("city", recorded by its lead), and a Village School technician's token."""
    keys = ServerKeys.load_or_create(controller_config.state_dir)
    with console.db() as s:
        add_classroom(s, "city-102", "City 102", "City School", keys.public)
        add_user(s, "tech-village", "technician", None)
        set_school(s, "tech-village", "Village School")
        token = create_api_token(s, "tech-village")
    shared = seed_lesson(console.db, "city-101", ["village-201"], T0, T0 + timedelta(seconds=6))
    city = seed_lesson(
        console.db,
        "city-101",
        ["city-102"],
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=1, seconds=6),
    )
    storage = controller_config.storage_dir
    seed_recording(console.db, storage, shared, "city-101")
    seed_recording(console.db, storage, shared, "village-201")
    seed_recording(console.db, storage, city, "city-101")
    return {"shared": shared, "city": city, "token": token}


async def _get(http: aiohttp.ClientSession, base: str, path: str) -> tuple[int, Any]:
    async with http.get(base + path) as r:
        body = await r.json() if r.content_type == "application/json" else await r.read()
        return r.status, body


async def test_a_school_technician_sees_only_its_school(
    console: Console, county: dict[str, str]
) -> None:
    shared, city = county["shared"], county["city"]
    headers = {"Authorization": f"Bearer {county['token']}"}
    async with console.session(headers=headers) as http:
        status, rooms = await _get(http, console.base, "/api/v1/classrooms")
        assert status == 200 and [r["id"] for r in rooms] == ["village-201"]
        status, board = await _get(http, console.base, "/api/v1/dashboard")
        assert status == 200 and board["agents"]["offline"] == 1
        assert [c["id"] for c in board["agents"]["classrooms"]] == ["village-201"]
        _, me = await _get(http, console.base, "/api/v1/session")
        assert me["school"] == "Village School"
        status, lessons = await _get(http, console.base, "/api/v1/lessons")
        assert status == 200 and [x["id"] for x in lessons] == [shared]
        status, found = await _get(http, console.base, "/api/v1/recordings")
        assert status == 200 and found["total"] == 1
        assert [(x["lesson"], x["classroom"]) for x in found["recordings"]] == [
            (shared, "village-201")
        ]
        # A lesson both schools take: only this school's recordings of it.
        status, doc = await _get(http, console.base, f"/api/v1/lessons/{shared}")
        assert status == 200 and [r["classroom"] for r in doc["recordings"]] == ["village-201"]
        status, cat = await _get(http, console.base, f"/api/v1/lessons/{shared}/recordings")
        assert status == 200 and [c["classroom"] for c in cat["classrooms"]] == ["village-201"]
        status, _ = await _get(
            http, console.base, f"/api/v1/recordings/{shared}/village-201/teacher.mp4"
        )
        assert status == 200
        # Everything of the other school is as if it did not exist.
        for path in (
            "/api/v1/classrooms/city-101",
            "/api/v1/classrooms/city-101/health",
            f"/api/v1/lessons/{city}",
            f"/api/v1/lessons/{city}/recordings",
            f"/api/v1/lessons/{city}/floor",
            f"/api/v1/recordings/{shared}/city-101/teacher.mp4",
            f"/api/v1/recordings/{city}/city-101/teacher.mp4",
        ):
            status, body = await _get(http, console.base, path)
            assert status == 404, (path, status, body)
            assert "school 'Village School'" in body["error"], path
        async with http.post(
            f"{console.base}/api/v1/classrooms/city-101/actions", json={"action": "doctor"}
        ) as r:
            assert r.status == 404  # not even 409 "agent not connected": not its classroom
        async with http.post(
            f"{console.base}/api/v1/classrooms/village-201/actions", json={"action": "doctor"}
        ) as r:
            assert r.status == 409  # its own: allowed, the agent is simply not connected


@pytest.mark.parametrize("role", ["inspector", "admin", "technician"])
async def test_county_accounts_see_every_school(
    console: Console, county: dict[str, str], role: str
) -> None:
    async with console.session(headers=console.bearer(role)) as http:
        _, rooms = await _get(http, console.base, "/api/v1/classrooms")
        assert {r["id"] for r in rooms} == {"city-101", "city-102", "village-201"}
        _, found = await _get(http, console.base, "/api/v1/recordings")
        assert found["total"] == 3
        status, _ = await _get(http, console.base, f"/api/v1/lessons/{county['city']}")
        assert status == 200


def test_set_school_checks_the_school_and_keeps_admins_county_wide(console: Console) -> None:
    with console.db() as s:
        with pytest.raises(InvalidRequest, match="known schools: City School, Village School"):
            set_school(s, "technician", "Nowhere School")
        with pytest.raises(InvalidRequest, match="always sees the county"):
            set_school(s, "admin", "City School")
        set_school(s, "inspector", "City School")
        set_school(s, "inspector", None)
