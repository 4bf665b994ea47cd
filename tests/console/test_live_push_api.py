"""A lesson's live push targets (直播推流) on a real controller: schedulers set them, every
staff role sees them without their stream keys, each push's state comes from the lead's
heartbeat, and the refusals say what was wrong."""

from __future__ import annotations

from typing import Any

from console.floor_seed import floor_lesson
from console.harness import Console
from sqlalchemy import select

from controller.db.models import AuditEntry, Classroom, LessonEvent
from controller.live_push.store import push_targets

KEY = "SECRET-stream-key-0042"
DINGTALK = {"name": "钉钉直播", "url": f"rtmp://push.dingtalk.example/live/{KEY}?auth=x"}
WECHAT = {"name": "微信直播", "url": "rtmps://wx.example:443/app/another-key"}


async def _put(console: Console, role: str, lesson: str, body: Any) -> tuple[int, Any]:
    url = f"{console.base}/api/v1/lessons/{lesson}/push"
    async with (
        console.session(headers=console.bearer(role)) as http,
        http.put(url, json=body) as r,
    ):
        return r.status, await r.json()


async def _put_raw(console: Console, lesson: str, raw: bytes) -> tuple[int, Any]:
    url = f"{console.base}/api/v1/lessons/{lesson}/push"
    headers = {**console.bearer("scheduler"), "Content-Type": "application/json"}
    async with console.session(headers=headers) as http, http.put(url, data=raw) as r:
        return r.status, await r.json()


async def _get(console: Console, role: str, lesson: str) -> tuple[int, Any]:
    url = f"{console.base}/api/v1/lessons/{lesson}/push"
    async with console.session(headers=console.bearer(role)) as http, http.get(url) as r:
        return r.status, await r.json()


async def test_targets_are_set_shown_redacted_with_the_leads_push_state(
    console: Console,
) -> None:
    lesson = floor_lesson(console, state="scheduled")
    status, doc = await _get(console, "inspector", lesson)
    assert status == 200 and doc["targets"] == [] and doc["changeable"] is True

    status, doc = await _put(console, "scheduler", lesson, {"targets": [DINGTALK, WECHAT]})
    assert status == 200, doc
    assert [(t["name"], t["where"], t["state"]) for t in doc["targets"]] == [
        ("钉钉直播", "rtmp://push.dingtalk.example/live/***", "unknown"),
        ("微信直播", "rtmps://wx.example:443/app/***", "unknown"),
    ]
    assert doc["changed_by"] == "console:scheduler"

    # The lead's agent reports its pushes in its heartbeats (stored as the room's health).
    with console.db() as s:
        lead = s.get(Classroom, "city-101")
        assert lead is not None
        lead.health = {
            **(lead.health or {}),
            "pushes": [
                {
                    "lesson_id": lesson,
                    "name": "钉钉直播",
                    "where": "x",
                    "state": "live",
                    "live_since": 1.0e9,
                    "bytes": 123456,
                    "reconnects": 0,
                    "last_error": "",
                },
                {
                    "lesson_id": lesson,
                    "name": "微信直播",
                    "where": "x",
                    "state": "retrying",
                    "bytes": 0,
                    "reconnects": 3,
                    "last_error": "connection refused",
                },
                {"lesson_id": "another-lesson", "name": "钉钉直播", "state": "stopped"},
            ],
        }
        s.commit()
    for role in ("inspector", "technician"):
        status, doc = await _get(console, role, lesson)
        assert status == 200, (role, doc)
        got = [(t["name"], t["state"], t["bytes"], t["reconnects"]) for t in doc["targets"]]
        assert got == [("钉钉直播", "live", 123456, 0), ("微信直播", "retrying", 0, 3)], role
        assert doc["targets"][1]["last_error"] == "connection refused"
        assert KEY not in str(doc) and "another-key" not in str(doc)
    status, doc = await _get(console, "teacher", lesson)  # not among a teacher's reads
    assert status == 403, doc

    with console.db() as s:
        events = [
            e.detail
            for e in s.scalars(select(LessonEvent).where(LessonEvent.lesson_id == lesson))
            if "live push" in e.detail
        ]
        audited = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "PUT /api/v1/lessons/{lesson}/push")
        ).all()
    assert events == [
        "live push targets set by console:scheduler: 钉钉直播 "
        "(rtmp://push.dingtalk.example/live/***), 微信直播 (rtmps://wx.example:443/app/***)"
    ]
    assert [(a.username, a.target) for a in audited][-1] == (
        "scheduler",
        f"/api/v1/lessons/{lesson}/push",
    )
    # A target sent by name alone keeps its stored address (nobody retypes stream keys).
    status, doc = await _put(console, "scheduler", lesson, {"targets": [{"name": "钉钉直播"}]})
    assert status == 200 and [t["name"] for t in doc["targets"]] == ["钉钉直播"], doc
    with console.db() as s:
        assert [t.url for t in push_targets(s, lesson)] == [DINGTALK["url"]]
    status, doc = await _put(console, "scheduler", lesson, {"targets": [{"name": "微信直播"}]})
    assert status == 400 and "no target named '微信直播'" in doc["error"], doc
    # An empty list takes every push away.
    status, doc = await _put(console, "admin", lesson, {"targets": []})
    assert status == 200 and doc["targets"] == []


async def test_who_may_set_them_and_every_refusal_names_the_problem(console: Console) -> None:
    lesson = floor_lesson(console, state="live")
    for role in ("teacher", "inspector", "technician"):
        status, doc = await _put(console, role, lesson, {"targets": [DINGTALK]})
        assert status == 403, (role, doc)

    cases: list[tuple[Any, str]] = [
        ({"targets": [{"name": "x", "url": "http://example.com/live/k"}]}, "targets[0].url"),
        ({"targets": [{"name": "x", "url": "rtmp://host-only"}]}, "targets[0].url"),
        ({"targets": [{"name": "", "url": DINGTALK["url"]}]}, "targets[0].name"),
        ({"targets": [DINGTALK, {**WECHAT, "name": "钉钉直播"}]}, "used twice"),
        ({"targets": [{**DINGTALK, "name": f"n{i}"} for i in range(5)]}, "at most 4"),
        ({"targets": [{**DINGTALK, "extra": 1}]}, "targets[0]"),
        ({"targets": "rtmp://x/y/z"}, "must be a list"),
        ({"targets": [], "more": 1}, "one field"),
        ([DINGTALK], "one field"),
    ]
    for body, says in cases:
        status, doc = await _put(console, "scheduler", lesson, body)
        assert status == 400, (body, doc)
        assert says in doc["error"], (body, doc)
        assert KEY not in doc["error"]
    status, doc = await _put_raw(console, lesson, b"{not json")
    assert status == 400 and "not JSON" in doc["error"]
    status, doc = await _put_raw(console, lesson, b'{"targets": [' + b" " * 9000 + b"]}")
    assert status == 413 and "8192" in doc["error"]
    status, doc = await _put(console, "scheduler", "no-such-lesson", {"targets": []})
    assert status == 404 and "does not exist" in doc["error"]
    status, doc = await _get(console, "scheduler", "no-such-lesson")
    assert status == 404

    over = floor_lesson(console, state="recorded")
    status, doc = await _put(console, "scheduler", over, {"targets": [DINGTALK]})
    assert status == 409 and "is recorded" in doc["error"], doc
