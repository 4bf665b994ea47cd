"""Inputs the schema-driven fuzzing (test_api_fuzz.py) found answered with 500; each is
now a 4xx whose message names the field and what is valid."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from helpers import bearer_headers, loopback_server_tls, loopback_session
from sqlalchemy.orm import Session, sessionmaker
from timetable_fixtures import ROOMS, SETUP

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.http_api import HttpApi
from controller.db.models import Lesson
from controller.db.session import make_engine, migrate, sessions
from controller.recordings.uploads import UploadService
from controller.storage.local import LocalStorage
from controller.timetable.setup import apply_setup, expand_term


@pytest.fixture
async def api(tmp_path: pathlib.Path) -> AsyncIterator[tuple[str, dict[str, str], str]]:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    db: sessionmaker[Session] = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with db() as s:
        for cid, school in ROOMS.items():
            add_classroom(s, cid, cid, school, keys.public)
        apply_setup(s, SETUP)
        expand_term(s, "spring")
        lesson = s.query(Lesson).first()
        assert lesson is not None
        lesson_id = lesson.id
    uploads = UploadService(db, LocalStorage(tmp_path / "storage"), lambda a, b: None)
    http = HttpApi(db, uploads, keys, lambda: [])
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    try:
        yield f"https://127.0.0.1:{http.port}/api/v1", bearer_headers(db), lesson_id
    finally:
        await http.stop()


async def _answer(r: aiohttp.ClientResponse) -> tuple[int, str]:
    return r.status, str((await r.json()).get("error", ""))


async def test_bad_inputs_are_4xx_naming_the_field(api: tuple[str, dict[str, str], str]) -> None:
    base, headers, lesson = api
    async with loopback_session(headers=headers) as http:
        body = {"action": "extend", "minutes": {"a": 1}}
        async with http.post(f"{base}/lessons/{lesson}/override", json=body) as r:
            status, error = await _answer(r)
            assert status == 400 and "'minutes' must be a number" in error, error
        body = {"lead": "city-101", "start": "2026-03-03T08:00+08:00"}
        async with http.post(
            f"{base}/lessons", json={**body, "end": "2026-03-03T08:40+08:00", "receivers": 7}
        ) as r:
            status, error = await _answer(r)
            assert status == 400 and "'receivers' must be a list" in error, error
        async with http.post(
            f"{base}/lessons/check",
            json={**body, "end": "2026-03-03T08:40+08:00", "receivers": True},
        ) as r:
            status, error = await _answer(r)
            assert status == 400 and "'receivers'" in error, error
        async with http.put(
            f"{base}/network-profiles/x",
            data=b"\xff\xf1name",
            headers={"Content-Type": "application/json"},
        ) as r:
            status, error = await _answer(r)
            assert status == 400 and "UTF-8" in error, error
        async with http.post(f"{base}/alerts/{10**30}/ack") as r:
            assert r.status == 404
        async with http.post(f"{base}/alerts/{10**30}/silence", json={"hours": 1}) as r:
            assert r.status == 404
        for query in (
            "start=0001-01-01T00:00:47Z&end=2000-04-01T05:00:00Z",
            "start=0001-01-01T00:00%2B08:00",
            "to=9999-12-31",
            "end=9999-12-31T23:59:59-08:00",
        ):
            async with http.get(f"{base}/timetable?{query}") as r:
                status, error = await _answer(r)
                assert status == 400 and "out of range" in error, (query, error)
        async with http.get(f"{base}/reports/pairings?from=0001-01-01&to=9999-12-31") as r:
            assert r.status in (200, 400), await r.text()
