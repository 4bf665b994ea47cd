"""Delivery lessons on demand through the API of a real controller: who may schedule one,
the refusals that say what to change, the playing room's fetch of the item (its upload
token only, audited), and a report that makes the lesson held."""

from __future__ import annotations

import json
import pathlib
from datetime import UTC, datetime, timedelta
from typing import Any

from console.harness import Console
from console.recording_seed import seed_lesson, seed_recording
from sqlalchemy import select

from controller.app.daemon import ControllerConfig
from controller.db.models import AuditEntry, Recording
from controller.delivery import store
from controller.recordings import upload_tokens
from protocols.messages import PlaybackReport

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


async def _call(
    console: Console, role: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with (
        console.session(headers=console.bearer(role)) as http,
        http.request(method, console.base + path, json=body) as r,
    ):
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


async def _approved_item(console: Console, storage: pathlib.Path) -> int:
    lid = seed_lesson(console.db, "city-101", ["village-201"], T0, T0 + timedelta(seconds=6))
    seed_recording(console.db, storage, lid, "city-101")
    ask = {"lesson": lid, "classroom": "city-101", "track": "teacher", "title": "分数"}
    status, item = await _call(console, "scheduler", "POST", "/api/v1/library/items", ask)
    assert status == 201, item
    path = f"/api/v1/library/items/{item['id']}/review"
    status, doc = await _call(console, "inspector", "POST", path, {"decision": "approve"})
    assert status == 200, doc
    return int(item["id"])


async def test_schedule_fetch_and_report_a_played_lesson(
    console: Console, controller_config: ControllerConfig
) -> None:
    storage = controller_config.storage_dir
    item = await _approved_item(console, storage)
    path = f"/api/v1/library/items/{item}/deliveries"
    start = datetime.now(UTC) + timedelta(hours=1)
    body = {"classroom": "village-201", "start": start.isoformat()}

    # Who may, and what is wrong, named.
    for role in ("technician", "inspector", "teacher"):
        status, _ = await _call(console, role, "POST", path, body)
        assert status == 403, role
    for bad, fragment in [
        ({}, "'classroom'"),
        ({"classroom": "village-201"}, "'start'"),
        ({**body, "start": "tomorrow-ish"}, "'start'"),
        ({**body, "colour": "red"}, "unknown field"),
        ({**body, "end": (start - timedelta(minutes=1)).isoformat()}, "must end after"),
    ]:
        status, doc = await _call(console, "scheduler", "POST", path, bad)
        assert status == 400 and fragment in doc["error"], (bad, doc)
    status, doc = await _call(console, "scheduler", "POST", path, {**body, "classroom": "nope"})
    assert status == 404 and "nope" in doc["error"]
    status, doc = await _call(
        console, "scheduler", "POST", "/api/v1/library/items/999/deliveries", body
    )
    assert status == 404

    status, made = await _call(console, "scheduler", "POST", path, body)
    assert status == 201, made
    lesson = made["lesson"]
    assert lesson["kind"] == "delivery" and lesson["classroom"] == "village-201"
    assert made["playback"]["played_s"] is None and made["playback"]["held"] is False
    # Ends after the item's length and a minute.
    length = datetime.fromisoformat(lesson["end_at"]) - datetime.fromisoformat(lesson["start_at"])
    assert abs(length.total_seconds() - (made["playback"]["duration_s"] + store.TAIL_S)) < 1
    status, clash = await _call(console, "scheduler", "POST", path, body)
    assert status == 409 and "has lesson" in clash["error"], clash

    # The playing room's agent fetches the item with its upload token; nobody else does.
    with console.db() as s:
        village = upload_tokens.issue(s, "village-201")
        city = upload_tokens.issue(s, "city-101")
        rec = s.scalars(select(Recording).where(Recording.classroom_id == "city-101")).one()
    fetch = console.base + store.media_route(lesson["id"])
    async with console.session() as http:
        async with http.get(fetch) as r:
            assert r.status == 401
        wrong = {"X-Classroom": "village-201", "Authorization": f"Bearer {city}"}
        async with http.get(fetch, headers=wrong) as r:
            assert r.status == 401
        other = {"X-Classroom": "city-101", "Authorization": f"Bearer {city}"}
        async with http.get(fetch, headers=other) as r:
            assert r.status == 404  # not the room that plays it
        mine = {"X-Classroom": "village-201", "Authorization": f"Bearer {village}"}
        async with http.get(fetch, headers=mine) as r:
            assert r.status == 200
            assert await r.read() == (storage / rec.path).read_bytes()
    with console.db() as s:
        fetched = s.scalars(select(AuditEntry).where(AuditEntry.action == "playback_fetch")).all()
    assert [(a.username, a.target) for a in fetched] == [
        ("agent:village-201", store.media_route(lesson["id"]))
    ]

    # Its report: held once it played at least 90 % of the item.
    duration = made["playback"]["duration_s"]
    played = f"/api/v1/lessons/{lesson['id']}/playback"
    with console.db() as s:
        store.record_report(
            s,
            lesson["id"],
            PlaybackReport(item_id=item, played_s=duration * 0.5, duration_s=duration),
        )
    status, doc = await _call(console, "inspector", "GET", played)
    assert status == 200 and doc["held"] is False and doc["share_played"] == 0.5
    with console.db() as s:
        store.record_report(
            s, lesson["id"], PlaybackReport(item_id=item, played_s=duration, duration_s=duration)
        )
    status, doc = await _call(console, "inspector", "GET", played)
    assert status == 200 and doc["held"] is True
    status, doc = await _call(console, "inspector", "GET", "/api/v1/lessons/nope/playback")
    assert status == 404


async def test_only_an_approved_item_is_played(
    console: Console, controller_config: ControllerConfig
) -> None:
    lid = seed_lesson(console.db, "city-101", ["village-201"], T0, T0 + timedelta(seconds=6))
    seed_recording(console.db, controller_config.storage_dir, lid, "city-101")
    ask = {"lesson": lid, "classroom": "city-101", "track": "teacher", "title": "分数"}
    status, item = await _call(console, "scheduler", "POST", "/api/v1/library/items", ask)
    body = {
        "classroom": "village-201",
        "start": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }
    status, doc = await _call(
        console, "scheduler", "POST", f"/api/v1/library/items/{item['id']}/deliveries", body
    )
    assert status == 409 and "approve" in doc["error"], doc
