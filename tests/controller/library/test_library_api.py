"""The resource library's API on a real controller: asking to publish with metadata,
review by another role (never one's own request), browsing, unpublishing, clips cut as a
remux at key frames, and packages; bad input is refused naming the field."""

from __future__ import annotations

import asyncio
import io
import json
import pathlib
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import av
import pytest
from console.harness import Console
from console.recording_seed import seed_lesson, seed_recording
from sqlalchemy import select

from controller.app.daemon import ControllerConfig
from controller.auth.accounts import add_user, create_api_token
from controller.db.models import AuditEntry, ConsoleUser, LibraryItem, PublishedRecording, Recording

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
GOP_S = 0.5  # the seeded recordings have a key frame every half second
META = {
    "title": "分数的初步认识",
    "subject": "数学",
    "grade": "三年级",
    "chapter": "第八单元 分数的初步认识",
    "teacher": "王老师",
    "school": "City School",
}


@pytest.fixture
def storage(controller_config: ControllerConfig) -> pathlib.Path:
    """The controller's local storage directory."""
    return controller_config.storage_dir


@pytest.fixture
def lesson(console: Console, controller_config: ControllerConfig) -> str:
    """A math lesson of City 101 with a stitched recording (6 s, a gap at 2-3 s)."""
    lid = seed_lesson(
        console.db,
        "city-101",
        ["village-201"],
        T0,
        T0 + timedelta(seconds=6),
        subject="math",
        teacher="t-wang",
        title="Fractions",
    )
    seed_recording(console.db, controller_config.storage_dir, lid, "city-101")
    return str(lid)


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


async def _bytes(console: Console, role: str, path: str) -> tuple[int, bytes, str]:
    async with (
        console.session(headers=console.bearer(role)) as http,
        http.get(console.base + path) as r,
    ):
        return r.status, await r.read(), r.headers.get("Content-Type", "")


async def test_publish_review_browse_and_unpublish(
    console: Console, lesson: str, storage: pathlib.Path
) -> None:
    source = {"lesson": lesson, "classroom": "city-101", "track": "teacher"}
    status, item = await _call(
        console, "scheduler", "POST", "/api/v1/library/items", {**source, **META}
    )
    assert status == 201, item
    assert item["status"] == "pending" and item["metadata"] == META
    assert item["package_url"] is None
    # Asked again: the same pending item.
    status, again = await _call(console, "scheduler", "POST", "/api/v1/library/items", source)
    assert status == 200 and again["id"] == item["id"]
    path = f"/api/v1/library/items/{item['id']}"

    # Not listed until approved; technicians do not see the queue at all.
    status, page = await _call(console, "technician", "GET", "/api/v1/library/items")
    assert status == 200 and page["total"] == 0
    status, doc = await _call(console, "technician", "GET", "/api/v1/library/items?status=pending")
    assert status == 400 and "approved items only" in doc["error"]
    status, _ = await _call(console, "technician", "GET", path)
    assert status == 404
    status, page = await _call(console, "inspector", "GET", "/api/v1/library/items?status=pending")
    assert [i["id"] for i in page["items"]] == [item["id"]]

    # Only a reviewer role decides, never on one's own request, and a rejection says why.
    status, doc = await _call(
        console, "scheduler", "POST", path + "/review", {"decision": "approve"}
    )
    assert status == 403
    status, doc = await _call(
        console, "inspector", "POST", path + "/review", {"decision": "reject"}
    )
    assert status == 400 and "'reason' is required" in doc["error"]
    status, doc = await _call(console, "inspector", "POST", path + "/review", {"decision": "maybe"})
    assert status == 400 and "'decision'" in doc["error"]
    status, package = await _call(console, "inspector", "GET", path + "/package")
    assert status == 409 and "only an approved item" in package["error"]
    status, doc = await _call(
        console, "inspector", "POST", path + "/review", {"decision": "approve", "reason": "好课"}
    )
    assert status == 200 and doc["status"] == "approved" and doc["reviewed_by"] == "inspector"
    status, doc = await _call(
        console, "admin", "POST", path + "/review", {"decision": "reject", "reason": "x"}
    )
    assert status == 409 and "only a pending one" in doc["error"]
    with console.db() as s:
        assert s.get(PublishedRecording, (lesson, "city-101", "teacher")) is not None

    status, page = await _call(console, "technician", "GET", "/api/v1/library/items")
    assert [i["id"] for i in page["items"]] == [item["id"]]
    status, media, kind = await _bytes(console, "technician", path + "/media")
    with console.db() as s:
        rec = s.scalars(select(Recording).where(Recording.lesson_id == lesson)).one()
    stored = storage / rec.path
    assert status == 200 and kind == "video/mp4" and media == stored.read_bytes()

    # Unpublish needs a reason, is audited, and takes the quota's "published" mark away.
    status, doc = await _call(console, "inspector", "POST", path + "/unpublish", {})
    assert status == 400 and "'reason'" in doc["error"]
    status, doc = await _call(
        console, "scheduler", "POST", path + "/unpublish", {"reason": "教材改版"}
    )
    assert status == 200 and doc["status"] == "unpublished" and doc["unpublished_by"] == "scheduler"
    status, page = await _call(console, "inspector", "GET", "/api/v1/library/items")
    assert page["total"] == 0
    with console.db() as s:
        assert s.get(PublishedRecording, (lesson, "city-101", "teacher")) is None
    assert "scheduler" in await _audited(console, "POST /api/v1/library/items/{item}/unpublish")
    assert "inspector" in await _audited(console, "POST /api/v1/library/items/{item}/review")
    assert await _audited(console, "play_library_item") == ["technician"]
    assert "technician" in await _audited(console, "list_library")


async def test_a_reviewer_may_not_approve_their_own_request(console: Console, lesson: str) -> None:
    source = {"lesson": lesson, "classroom": "city-101", "track": "teacher", "title": "Mine"}
    status, item = await _call(console, "admin", "POST", "/api/v1/library/items", source)
    assert status == 201, item
    path = f"/api/v1/library/items/{item['id']}/review"
    status, doc = await _call(console, "admin", "POST", path, {"decision": "approve"})
    assert status == 403 and "another reviewer" in doc["error"]
    status, doc = await _call(
        console, "inspector", "POST", path, {"decision": "reject", "reason": "no"}
    )
    assert status == 200 and doc["status"] == "rejected" and doc["review_reason"] == "no"


async def test_bad_metadata_is_refused_naming_the_field(console: Console, lesson: str) -> None:
    source = {"lesson": lesson, "classroom": "city-101", "track": "teacher"}
    cases = [
        ({**source, "title": "x" * 201}, "'title'", "at most 200"),
        ({**source, "title": "   "}, "'title'", "may not be empty"),
        ({**source, "grade": 3}, "'grade'", "text"),
        ({**source, "chapter": "c" * 201}, "'chapter'", "at most 200"),
        ({**source, "colour": "red"}, "colour", "unknown field"),
        ({"lesson": lesson, "classroom": "city-101"}, "'track'", "an id"),
    ]
    for body, name, words in cases:
        status, doc = await _call(console, "scheduler", "POST", "/api/v1/library/items", body)
        assert status == 400, (body, doc)
        assert name in doc["error"] and words in doc["error"], doc
    status, doc = await _call(
        console, "scheduler", "POST", "/api/v1/library/items", {**source, "track": "student"}
    )
    assert status == 404 and "no recording of track 'student'" in doc["error"]
    status, doc = await _call(console, "technician", "POST", "/api/v1/library/items", source)
    assert status == 403
    async with (
        console.session(headers=console.bearer("scheduler")) as http,
        http.post(console.base + "/api/v1/library/items", data=b"{" + b" " * 20000 + b"}") as r,
    ):
        assert r.status == 413
    status, doc = await _call(console, "inspector", "GET", "/api/v1/library/items?status=gone")
    assert status == 400 and "choose one of" in doc["error"]
    status, doc = await _call(console, "inspector", "GET", "/api/v1/library/items/nine")
    assert status == 404


async def test_a_school_account_publishes_only_its_own_schools_recordings(
    console: Console, lesson: str
) -> None:
    with console.db() as s:
        add_user(s, "v-sched", "scheduler", "pw-123456789", "Village scheduler")
        s.scalars(
            select(ConsoleUser).where(ConsoleUser.username == "v-sched")
        ).one().school = "Village School"
        s.commit()
        token = create_api_token(s, "v-sched", "tests")
    body = {"lesson": lesson, "classroom": "city-101", "track": "teacher"}
    async with (
        console.session(headers={"Authorization": f"Bearer {token}"}) as http,
        http.post(console.base + "/api/v1/library/items", json=body) as r,
    ):
        assert r.status == 404, await r.text()


async def _audited(console: Console, action: str) -> list[str]:
    """Who the audit log names for ``action`` (written as the response ends: wait a bit)."""
    for _ in range(100):
        with console.db() as s:
            rows = s.scalars(select(AuditEntry.username).where(AuditEntry.action == action)).all()
        if rows:
            return list(rows)
        await asyncio.sleep(0.05)
    return []


def _probe(path: Any) -> tuple[str, float]:
    """(codec, duration s) by ffprobe."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    doc = json.loads(out.stdout)
    return doc["streams"][0]["codec_name"], float(doc["format"]["duration"])


async def test_a_clip_is_a_keyframe_remux_reviewed_and_exported(
    console: Console, lesson: str, storage: pathlib.Path
) -> None:
    body: dict[str, Any] = {
        "lesson": lesson,
        "classroom": "city-101",
        "track": "teacher",
        "start_s": 3.2,
        "end_s": 5.1,
        "title": "找一找分数",
        "grade": "三年级",
    }
    status, clip = await _call(console, "scheduler", "POST", "/api/v1/library/clips", body)
    assert status == 201, clip
    assert clip["kind"] == "clip" and clip["status"] == "pending"
    with console.db() as s:
        rec = s.scalars(select(Recording).where(Recording.lesson_id == lesson)).one()
        row = s.get(LibraryItem, clip["id"])
        assert row is not None and row.path and row.path.startswith(f"lessons/{lesson}/city-101/")
    clip_file = storage / row.path
    source_codec, _ = _probe(storage / rec.path)
    codec, duration = _probe(clip_file)
    asked = body["end_s"] - body["start_s"]
    assert codec == source_codec == "h264" and clip["codec"] == "h264"
    assert abs(duration - asked) <= 2 * GOP_S, (duration, asked)
    assert clip["clip"]["start_s"] <= body["start_s"] < clip["clip"]["start_s"] + GOP_S + 0.05
    # No re-encode: the clip's first video packet is the source's, byte for byte.
    assert _first_video_packet(clip_file) in _video_packets(storage / rec.path)

    # The clip is its own item and goes through review like any other.
    path = f"/api/v1/library/items/{clip['id']}"
    status, doc = await _call(
        console, "inspector", "POST", path + "/review", {"decision": "approve"}
    )
    assert status == 200 and doc["package_url"] == path + "/package"
    status, data, kind = await _bytes(console, "technician", path + "/package")
    assert status == 200 and kind == "application/zip"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        meta = json.loads(zf.read("metadata.json"))
        mp4 = zf.read(meta["media"]["file"])
    assert mp4 == clip_file.read_bytes()
    assert meta["format"] == "classbridge.resource-package/1" and meta["kind"] == "clip"
    assert meta["title"] == "找一找分数" and meta["grade"] == "三年级"
    assert meta["subject"] == "math" and meta["school"] == "City School"
    assert meta["lesson"]["id"] == lesson and meta["review"]["approved_by"] == "inspector"
    assert meta["media"]["sha256"] == row.sha256 and meta["media"]["codec"] == "h264"
    assert meta["clip"]["source_start_s"] == clip["clip"]["start_s"]
    documented = (pathlib.Path(__file__).parents[3] / "docs" / "resource_package.md").read_text()
    for key, value in meta.items():
        names = [f"{key}.{k}" for k in value] if isinstance(value, dict) else [key]
        for name in names:
            assert f"`{name}`" in documented or f"`{name}`," in documented, name
    assert await _audited(console, "export_library_package") == ["technician"]


async def test_clips_that_are_not_clips_are_refused(console: Console, lesson: str) -> None:
    base = {"lesson": lesson, "classroom": "city-101", "track": "teacher"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"start_s": 0, "end_s": 301}, "at most 300 s"),
        ({"start_s": 10, "end_s": 12}, "past the end of the recording"),
        ({"start_s": 1, "end_s": 30}, "'end_s' (30 s) is past the end"),
        ({"start_s": 4, "end_s": 2}, "must be after"),
        ({"start_s": -1, "end_s": 2}, "starts at 0 s or later"),
        ({"end_s": 2}, "'start_s'"),
        ({"start_s": "soon", "end_s": 2}, "'start_s' must be a number"),
    ]
    for span, words in cases:
        status, doc = await _call(
            console, "scheduler", "POST", "/api/v1/library/clips", {**base, **span}
        )
        assert status == 400 and words in doc["error"], (span, doc)
    with console.db() as s:
        assert s.scalars(select(LibraryItem)).all() == []


def _video_packets(path: Any) -> set[bytes]:
    with av.open(str(path)) as src:
        return {bytes(p) for p in src.demux(video=0) if p.size}


def _first_video_packet(path: Any) -> bytes:
    with av.open(str(path)) as src:
        for p in src.demux(video=0):
            if p.size:
                assert p.is_keyframe
                return bytes(p)
    raise AssertionError("no video packet")
