"""Viewing children's images is recorded (等保): playback, the catalogue and patrol's list
leave audit rows on a real controller; range requests fold into one row per viewer and
file per window; every GET route is classified; playback serves only catalogued files."""

from __future__ import annotations

import asyncio
import pathlib
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from console.harness import PASSWORD, Console
from console.recording_seed import seed_lesson, seed_recording
from sqlalchemy import select, update

from controller.agents.keys import ServerKeys
from controller.app.daemon import ControllerConfig
from controller.app.http_api import HttpApi
from controller.auth.audit_check import unaudited_routes
from controller.auth.personal import NOT_PERSONAL_READS, PERSONAL_READS
from controller.db.models import AuditEntry, Recording
from controller.db.session import database_url, make_engine, migrate, sessions
from controller.recordings.uploads import UploadService
from controller.storage.local import LocalStorage
from protocols.tls import pinned_client_context

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def recorded(console: Console, controller_config: ControllerConfig) -> dict[str, str]:
    """One lesson recorded by its lead classroom: its id and playback path."""
    lesson = seed_lesson(console.db, "city-101", ["village-201"], T0, T0 + timedelta(seconds=6))
    url = seed_recording(console.db, controller_config.storage_dir, lesson, "city-101")
    return {"lesson": lesson, "url": url}


def _rows(console: Console, action: str) -> list[AuditEntry]:
    with console.db() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)).all())


async def _signed_in(console: Console, user: str) -> aiohttp.ClientSession:
    http = console.session(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(
        f"{console.base}/api/v1/session", json={"username": user, "password": PASSWORD}
    ) as r:
        assert r.status == 200, await r.text()
    return http


async def test_playback_is_audited_once_per_viewer_and_window(
    console: Console, recorded: dict[str, str]
) -> None:
    url = console.base + recorded["url"]
    first = await _signed_in(console, "inspector")
    second = await _signed_in(console, "inspector")
    try:
        # A browser plays with many byte-range requests: one row for this session.
        for start in (0, 1000, 2000):
            async with first.get(url, headers={"Range": f"bytes={start}-{start + 999}"}) as r:
                assert r.status == 206 and len(await r.read()) == 1000
        # Another session of the same user is another viewing.
        async with second.get(url) as r:
            assert r.status == 200
            size = len(await r.read())
    finally:
        await first.close()
        await second.close()
    rows = _rows(console, "play_recording")
    assert len(rows) == 2, [(r.target, r.detail) for r in rows]
    ranged, whole = sorted(rows, key=lambda r: r.id)
    assert ranged.username == "inspector" and ranged.role == "inspector"
    assert ranged.target == recorded["url"] and ranged.remote_addr == "127.0.0.1"
    assert ranged.detail["status"] == 206 and ranged.detail["bytes"] == 1000
    assert ranged.detail["range"] == "bytes=0-999" and ranged.detail["via"] == "session"
    assert whole.detail["status"] == 200 and whole.detail["bytes"] == size
    assert 5.5 < whole.detail["seconds"] < 6.5  # the whole 6 s recording


async def test_catalogue_reads_and_patrol_list_are_audited(
    console: Console, recorded: dict[str, str]
) -> None:
    lesson = recorded["lesson"]
    async with console.session(headers=console.bearer("technician")) as http:
        for path in (
            "/api/v1/recordings?school=City+School",
            f"/api/v1/lessons/{lesson}/recordings",
            f"/api/v1/lessons/{lesson}",
            "/api/v1/live",
            "/api/v1/lessons",  # not personal: no row
        ):
            async with http.get(console.base + path) as r:
                assert r.status == 200, (path, await r.text())
    with console.db() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.username == "technician")).all()
        seen = {(r.action, r.target, r.detail["status"]) for r in rows}
    assert seen == {
        ("list_recordings", "/api/v1/recordings?school=City+School", 200),
        ("read_catalogue", f"/api/v1/lessons/{lesson}/recordings", 200),
        ("read_lesson", f"/api/v1/lessons/{lesson}", 200),
        ("list_live", "/api/v1/live", 200),
    }


async def test_refused_reads_of_recordings_are_audited_too(
    console: Console, recorded: dict[str, str]
) -> None:
    async with (
        console.session(headers=console.bearer("teacher")) as http,
        http.get(console.base + recorded["url"]) as r,
    ):
        assert r.status == 403
    [row] = _rows(console, "play_recording")
    assert row.username == "teacher" and row.detail["status"] == 403


async def test_no_personal_data_route_is_left_unaudited(
    console: Console, recorded: dict[str, str]
) -> None:
    tls = pinned_client_context(console.trust_pem)
    found = await asyncio.to_thread(
        unaudited_routes, console.base, console.tokens["admin"], ssl_context=tls
    )
    assert found == []
    # As a technician, the audit log read with an inspector's token.
    found = await asyncio.to_thread(
        unaudited_routes,
        console.base,
        console.tokens["technician"],
        auditor_token=console.tokens["inspector"],
        ssl_context=tls,
    )
    assert found == []
    # The check does find a route that writes no row (GET /api/v1/lessons is not personal).
    found = await asyncio.to_thread(
        unaudited_routes,
        console.base,
        console.tokens["admin"],
        routes=["/api/v1/lessons", "/api/v1/recordings"],
        ssl_context=tls,
    )
    assert found == ["/api/v1/lessons"]


def test_every_get_route_is_classified_personal_or_not(tmp_path: pathlib.Path) -> None:
    url = database_url(tmp_path)
    migrate(url)
    db = sessions(make_engine(url))
    storage = LocalStorage(tmp_path / "storage")
    api = HttpApi(
        db,
        UploadService(db, storage, lambda *_: None),
        ServerKeys.load_or_create(tmp_path),
        lambda: [],
    )
    gets = set()
    for route in api.app.router.routes():
        if route.method == "GET" and route.resource is not None:
            gets.add(route.resource.canonical)
    assert not set(PERSONAL_READS) & set(NOT_PERSONAL_READS)
    unclassified = gets - set(PERSONAL_READS) - set(NOT_PERSONAL_READS)
    assert not unclassified, f"classify these in controller/auth/personal.py: {unclassified}"
    assert set(PERSONAL_READS) <= gets  # no stale entries
    assert "/api/v1/recordings/{lesson}/{classroom}/{file}" in PERSONAL_READS


async def test_playback_serves_only_catalogued_files_with_their_type(
    console: Console, recorded: dict[str, str], controller_config: ControllerConfig
) -> None:
    lesson = recorded["lesson"]
    # The classroom's manifest is uploaded into the same folder as the stitched files.
    folder = controller_config.storage_dir / "lessons" / lesson / "city-101"
    (folder / "manifest.json").write_text('{"lesson_id": "x"}')
    async with console.session(headers=console.bearer("inspector")) as http:
        for other in ("manifest.json", "nope.mp4"):
            async with http.get(f"{console.base}/api/v1/recordings/{lesson}/city-101/{other}") as r:
                assert r.status == 404, (other, r.status)
                assert "no such recording" in (await r.json())["error"]
        async with http.get(console.base + recorded["url"]) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "video/mp4"
        with console.db() as s:
            s.execute(update(Recording).values(kind="audio"))
            s.commit()
        async with http.get(console.base + recorded["url"]) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "audio/mp4"
