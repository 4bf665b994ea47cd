"""Patrol viewers on the controller's API and a real relay: each viewing is audited at
its start and its end (with the duration), only the viewer's own session or an admin may
hang it up, and a school-scoped account watches only its school's feeds."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection
from console.harness import PASSWORD, Console
from console.recording_seed import seed_lesson
from helpers import loopback_server_tls, loopback_tls
from sqlalchemy import select, update

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.http_api import HttpApi
from controller.auth.accounts import add_user, create_api_token
from controller.auth.scope import set_school
from controller.db.models import AuditEntry, Lesson
from controller.db.session import database_url, make_engine, migrate, sessions
from controller.recordings.uploads import UploadService
from controller.relay.room import LessonRelay
from controller.storage.local import LocalStorage

pytestmark = pytest.mark.timeout(60)


class OneLessonRelays:
    """What patrol needs from the orchestrator: one lesson under way, with its relay."""

    def __init__(self, relay: LessonRelay) -> None:
        self.relay = relay
        self.runs: dict[str, Any] = {relay.lesson_id: relay}

    def relay_for(self, lesson_id: str) -> LessonRelay | None:
        """The relay of the live lesson."""
        return self.relay if lesson_id == self.relay.lesson_id else None


@pytest.fixture
async def patrol(tmp_path: pathlib.Path) -> AsyncIterator[tuple[Console, LessonRelay]]:
    """The controller's HTTP API with a live lesson of City 101 and Village 201 whose
    teacher cameras reach the relay; users of each role, ``inspector2`` and a Village
    School technician ``tech-village``."""
    url = database_url(tmp_path)
    migrate(url)
    db = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    tokens = {}
    with db() as s:
        for name, role in (
            ("admin", "admin"),
            ("inspector", "inspector"),
            ("inspector2", "inspector"),
            ("tech-village", "technician"),
        ):
            add_user(s, name, role, PASSWORD)
            tokens[name] = create_api_token(s, name)
        add_classroom(s, "city-101", "City 101", "City School", keys.public)
        add_classroom(s, "village-201", "Village 201", "Village School", keys.public)
        set_school(s, "tech-village", "Village School")
    now = datetime.now(UTC)
    lesson = seed_lesson(db, "city-101", ["village-201"], now, now + timedelta(minutes=40))
    with db() as s:
        s.execute(update(Lesson).where(Lesson.id == lesson).values(state="live"))
        s.commit()
    relay = LessonRelay(lesson)
    for room in ("city-101", "village-201"):
        relay.feed(room, "teacher", "video").attach_publisher(lambda: True)
    relays = OneLessonRelays(relay)
    storage = LocalStorage(tmp_path / "storage")
    api = HttpApi(db, UploadService(db, storage, lambda *_: None), keys, list, lambda: relays)
    await api.start("127.0.0.1", 0, tls=loopback_server_tls())
    try:
        yield Console(f"https://127.0.0.1:{api.port}", db, tokens, loopback_tls().trust_pem), relay
    finally:
        await relay.close()
        await api.stop()


async def _offer() -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def _watch(
    http: aiohttp.ClientSession, console: Console, lesson: str, room: str, csrf: str = ""
) -> tuple[int, dict[str, Any]]:
    pc, sdp = await _offer()
    try:
        body = {"sdp": sdp, "feeds": [{"classroom": room, "track": "teacher", "kind": "video"}]}
        headers = {"X-CSRF-Token": csrf} if csrf else {}
        async with http.post(
            f"{console.base}/api/v1/lessons/{lesson}/watch", json=body, headers=headers
        ) as r:
            return r.status, await r.json()
    finally:
        await pc.close()


def _rows(console: Console, action: str) -> list[AuditEntry]:
    with console.db() as s:
        query = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        return list(s.scalars(query).all())


async def _browser(console: Console, user: str) -> tuple[aiohttp.ClientSession, str]:
    http = console.session(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(
        f"{console.base}/api/v1/session", json={"username": user, "password": PASSWORD}
    ) as r:
        assert r.status == 200
        return http, str((await r.json())["csrf"])


async def test_watching_is_audited_at_start_and_end_and_only_its_owner_hangs_up(
    patrol: tuple[Console, LessonRelay],
) -> None:
    console, relay = patrol
    lesson = relay.lesson_id
    mine, csrf = await _browser(console, "inspector")
    same_user_elsewhere, other_csrf = await _browser(console, "inspector")
    try:
        status, doc = await _watch(mine, console, lesson, "city-101", csrf)
        assert status == 201, doc
        viewer = doc["viewer"]
        hang_up = f"{console.base}/api/v1/lessons/{lesson}/watch/{viewer}"
        # Another user, or the same user's other session, cannot hang this viewer up.
        async with (
            console.session(headers=console.bearer("inspector2")) as http,
            http.delete(hang_up) as r,
        ):
            assert r.status == 403, await r.text()
            assert "only that session or an admin" in (await r.json())["error"]
        async with same_user_elsewhere.delete(hang_up, headers={"X-CSRF-Token": other_csrf}) as r:
            assert r.status == 403
        assert relay.viewers == [viewer]
        async with mine.delete(hang_up, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200, await r.text()
        assert relay.viewers == []
    finally:
        await mine.close()
        await same_user_elsewhere.close()
    [start] = _rows(console, "watch")
    assert start.username == "inspector" and start.target == f"/api/v1/lessons/{lesson}/watch"
    assert start.detail["viewer"] == viewer and start.detail["feeds"] == ["city-101/teacher"]
    [end] = _rows(console, "watch_end")
    assert end.username == "inspector" and end.detail["ended_by"] == "inspector"
    assert end.detail["viewer"] == viewer and 0 <= end.detail["duration_s"] < 30


async def test_an_admin_may_hang_up_and_a_lost_connection_ends_the_viewing(
    patrol: tuple[Console, LessonRelay],
) -> None:
    console, relay = patrol
    lesson = relay.lesson_id
    async with console.session(headers=console.bearer("inspector")) as http:
        _, first = await _watch(http, console, lesson, "city-101")
        _, second = await _watch(http, console, lesson, "village-201")
    async with (
        console.session(headers=console.bearer("admin")) as http,
        http.delete(f"{console.base}/api/v1/lessons/{lesson}/watch/{first['viewer']}") as r,
    ):
        assert r.status == 200
    await relay.close_viewer(second["viewer"])  # as when its peer connection fails
    ends = {r.detail["viewer"]: r.detail["ended_by"] for r in _rows(console, "watch_end")}
    assert ends == {first["viewer"]: "admin", second["viewer"]: "connection closed"}


async def test_a_school_account_patrols_only_its_school(
    patrol: tuple[Console, LessonRelay],
) -> None:
    console, relay = patrol
    async with console.session(headers=console.bearer("tech-village")) as http:
        async with http.get(f"{console.base}/api/v1/live") as r:
            [live] = await r.json()
        assert [f["classroom"] for f in live["feeds"]] == ["village-201"]
        assert list(live["classrooms"]) == ["village-201"]
        status, doc = await _watch(http, console, relay.lesson_id, "city-101")
        assert status == 403 and "outside school 'Village School'" in doc["error"]
        status, doc = await _watch(http, console, relay.lesson_id, "village-201")
        assert status == 201, doc
    async with console.session(headers=console.bearer("inspector")) as http:
        async with http.get(f"{console.base}/api/v1/live") as r:
            [live] = await r.json()
        assert {f["classroom"] for f in live["feeds"]} == {"city-101", "village-201"}
