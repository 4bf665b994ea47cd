"""Scheduling checks, and the upload API's refusals (token, checksum, manifest)."""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.db.session import make_engine, migrate, sessions
from controller.errors import InvalidRequest, NotFound
from controller.http_api import HttpApi
from controller.keys import ServerKeys
from controller.lessons import schedule_lesson
from controller.registry import add_classroom
from controller.storage.local import LocalStorage

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: pathlib.Path) -> sessionmaker[Session]:
    """A migrated SQLite database with three classrooms."""
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    factory = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with factory() as s:
        for cid in ("a", "b", "c"):
            add_classroom(s, cid, cid, "", keys.public)
    return factory


def test_schedule_checks(db: sessionmaker[Session]) -> None:
    with db() as s:
        lesson = schedule_lesson(s, "a", ["b"], T0, T0 + timedelta(minutes=40))
        assert lesson.classroom_ids == ["a", "b"] and lesson.state == "scheduled"
        cases = [
            (("a", ["b"], T0 + timedelta(minutes=40), T0), InvalidRequest, "end after it starts"),
            (("a", ["a"], T0, T0 + timedelta(hours=1)), InvalidRequest, "both lead and receive"),
            (("a", [], T0, T0 + timedelta(hours=1)), InvalidRequest, "at least one receiving"),
            (("a", ["zz"], T0, T0 + timedelta(hours=1)), NotFound, "'zz' does not exist"),
            (
                ("c", ["b"], T0 + timedelta(minutes=30), T0 + timedelta(hours=1)),
                InvalidRequest,
                "'b' is already booked by lesson " + lesson.id,
            ),
            (
                ("a", ["b"], T0.replace(tzinfo=None), T0.replace(tzinfo=None) + timedelta(hours=1)),
                InvalidRequest,
                "time zone",
            ),
        ]
        for args, error, fragment in cases:
            with pytest.raises(error) as info:
                schedule_lesson(s, *args)  # type: ignore[arg-type]
            assert fragment in str(info.value)
        # back to back in the same room is fine
        schedule_lesson(s, "c", ["b"], T0 + timedelta(minutes=40), T0 + timedelta(minutes=80))


@pytest.fixture
async def api(
    db: sessionmaker[Session], tmp_path: pathlib.Path
) -> AsyncIterator[tuple[str, ServerKeys, str]]:
    """The HTTP API on a free port, with one scheduled lesson."""
    keys = ServerKeys.load_or_create(tmp_path)
    with db() as s:
        lesson = schedule_lesson(s, "a", ["b"], T0, T0 + timedelta(minutes=40))
    http = HttpApi(db, LocalStorage(tmp_path / "storage"), keys, lambda: [], lambda _: None)
    await http.start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{http.port}/api/v1", keys, lesson.id
    finally:
        await http.stop()


async def test_upload_refusals_and_acceptance(
    api: tuple[str, ServerKeys, str], tmp_path: pathlib.Path
) -> None:
    base, keys, lesson_id = api
    body = b"segment bytes"
    sha = hashlib.sha256(body).hexdigest()
    url = f"{base}/recordings/{lesson_id}/a/teacher/teacher-00001.mp4"
    good = {"Authorization": f"Bearer {keys.upload_token('a')}", "X-Content-SHA256": sha}
    async with aiohttp.ClientSession() as http:
        async with http.put(url, data=body, headers={**good, "Authorization": "Bearer nope"}) as r:
            assert r.status == 401
        async with http.put(
            url, data=body, headers={**good, "Authorization": f"Bearer {keys.upload_token('b')}"}
        ) as r:
            assert r.status == 401  # b's token cannot write a's recordings
        async with http.put(url, data=body + b"!", headers=good) as r:
            assert r.status == 422 and "sender declared" in (await r.json())["error"]
        stored = tmp_path / "storage" / lesson_id / "a" / "teacher" / "teacher-00001.mp4"
        assert not stored.exists() and not list(stored.parent.glob("*.part"))
        async with http.put(f"{base}/recordings/{lesson_id}/a/../x", data=body, headers=good) as r:
            assert r.status in (400, 404)
        async with http.put(url, data=body, headers=good) as r:
            assert r.status == 201
        assert stored.read_bytes() == body

        manifest = {
            "lesson_id": lesson_id,
            "classroom_id": "a",
            "started_at": 0,
            "ended_at": 1,
            "tracks": [
                {
                    "track": "teacher",
                    "kind": "video",
                    "direction": "send",
                    "source_classroom": "a",
                    "segments": [
                        {
                            "name": "teacher-00001.mp4",
                            "seq": 1,
                            "start_s": 0,
                            "end_s": 1,
                            "frames": 30,
                            "bytes": len(body),
                            "sha256": sha,
                        },
                        {
                            "name": "teacher-00002.mp4",
                            "seq": 2,
                            "start_s": 1,
                            "end_s": 2,
                            "frames": 30,
                            "bytes": 1,
                            "sha256": "0" * 64,
                        },
                    ],
                }
            ],
        }
        murl = f"{base}/recordings/{lesson_id}/a/manifest.json"
        async with http.put(murl, data=json.dumps(manifest), headers=good) as r:
            assert r.status == 409 and "teacher/teacher-00002.mp4" in (await r.json())["error"]
        async with http.put(murl, data=b"{]", headers=good) as r:
            assert r.status == 400 and "manifest is not valid" in (await r.json())["error"]
        wrong = {**manifest, "classroom_id": "b"}
        async with http.put(murl, data=json.dumps(wrong), headers=good) as r:
            assert r.status == 400 and "uploaded to" in (await r.json())["error"]
        async with http.get(f"{base}/lessons/nope") as r:
            assert r.status == 404
