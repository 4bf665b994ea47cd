"""Lesson review (评课) on a real controller: an inspector pins notes to moments and scores
a lesson against the county's rubric; the refusals say what was wrong."""

from __future__ import annotations

from typing import Any

from console.floor_seed import floor_lesson
from console.harness import Console
from sqlalchemy import select

from controller.db.models import AuditEntry


async def _call(
    console: Console, role: str, method: str, path: str, body: Any = None, raw: bytes = b""
) -> tuple[int, Any]:
    async with (
        console.session(headers=console.bearer(role)) as http,
        http.request(
            method, f"{console.base}{path}", json=body if not raw else None, data=raw or None
        ) as r,
    ):
        return r.status, await r.json()


FULL = {"goals": 18, "delivery": 25, "interaction": 22, "media": 15}


async def test_an_inspector_pins_notes_and_scores_a_lesson(console: Console) -> None:
    lesson = floor_lesson(console, state="recorded")
    base = f"/api/v1/lessons/{lesson}"
    status, note = await _call(
        console, "inspector", "POST", f"{base}/notes", {"at_s": 754.2, "text": "  学生上台板书 "}
    )
    assert status == 201, note
    assert (
        note["at_s"] == 754.2 and note["text"] == "学生上台板书" and note["author"] == "inspector"
    )
    await _call(console, "admin", "POST", f"{base}/notes", {"at_s": 60, "text": "开场问候"})
    status, score = await _call(
        console, "inspector", "PUT", f"{base}/score", {"scores": FULL, "comment": "互动充分"}
    )
    assert status == 200, score
    assert (score["total"], score["out_of"]) == (80, 100)
    # Given again, it replaces the inspector's score; the admin's is a second one.
    await _call(console, "inspector", "PUT", f"{base}/score", {"scores": {**FULL, "media": 5}})
    await _call(console, "admin", "PUT", f"{base}/score", {"scores": FULL})
    status, doc = await _call(console, "scheduler", "GET", f"{base}/review")
    assert status == 200, doc
    assert [n["text"] for n in doc["notes"]] == ["开场问候", "学生上台板书"]  # by moment
    assert [(s["author"], s["total"]) for s in doc["scores"]] == [("inspector", 70), ("admin", 80)]
    assert doc["mean_pct"] == 75.0
    assert [c["id"] for c in doc["rubric"]] == ["goals", "delivery", "interaction", "media"]
    with console.db() as s:
        actions = set(s.scalars(select(AuditEntry.action)).all())
    assert "POST /api/v1/lessons/{lesson}/notes" in actions
    assert "PUT /api/v1/lessons/{lesson}/score" in actions


async def test_the_county_sets_its_rubric_and_scores_follow_it(console: Console) -> None:
    rubric = {
        "criteria": [
            {"id": "design", "label_zh": "教学设计", "label_en": "Design", "points": 40},
            {"id": "effect", "label_zh": "教学效果", "label_en": "Effect", "points": 60},
        ]
    }
    status, doc = await _call(console, "inspector", "PUT", "/api/v1/review/rubric", rubric)
    assert status == 403, doc
    status, doc = await _call(console, "admin", "PUT", "/api/v1/review/rubric", rubric)
    assert status == 200 and [c["id"] for c in doc["criteria"]] == ["design", "effect"]
    lesson = floor_lesson(console, state="live")
    path = f"/api/v1/lessons/{lesson}/score"
    status, doc = await _call(console, "inspector", "PUT", path, {"scores": FULL})
    assert status == 400 and "unknown: delivery, goals, interaction, media" in doc["error"]
    status, doc = await _call(
        console, "inspector", "PUT", path, {"scores": {"design": 41, "effect": 50}}
    )
    assert status == 400 and "'scores.design' must be a whole number 0-40" in doc["error"]
    status, doc = await _call(
        console, "inspector", "PUT", path, {"scores": {"design": 30, "effect": 50}}
    )
    assert status == 200 and (doc["total"], doc["out_of"]) == (80, 100)
    bad = {"criteria": [{"id": "Design!", "label_zh": "x", "label_en": "x", "points": 5}]}
    status, doc = await _call(console, "admin", "PUT", "/api/v1/review/rubric", bad)
    assert status == 400 and "criteria[0].id" in doc["error"]


async def test_reviews_are_refused_with_what_was_wrong(console: Console) -> None:
    lesson = floor_lesson(console, state="live")
    notes = f"/api/v1/lessons/{lesson}/notes"
    for role in ("scheduler", "technician", "teacher"):
        status, _ = await _call(console, role, "POST", notes, {"at_s": 1, "text": "x"})
        assert status == 403, role
    cases: list[tuple[Any, str]] = [
        ({"at_s": -1, "text": "x"}, "'at_s' must be seconds from the lesson's start, 0 to"),
        ({"at_s": 99999, "text": "x"}, "'at_s'"),
        ({"at_s": "soon", "text": "x"}, "'at_s'"),
        ({"at_s": 5, "text": "   "}, "'text' must be a note of 1-2000 characters"),
        ({"at_s": 5, "text": "x", "mood": "good"}, "unknown field(s) mood"),
        ([1, 2], "body must be a JSON object"),
    ]
    for body, fragment in cases:
        status, doc = await _call(console, "inspector", "POST", notes, body)
        assert status == 400 and fragment in doc["error"], (body, doc)
    status, doc = await _call(console, "inspector", "POST", notes, raw=b"x" * (17 * 1024))
    assert status == 413, doc
    status, doc = await _call(
        console, "inspector", "POST", "/api/v1/lessons/nope/notes", {"at_s": 1, "text": "x"}
    )
    assert status == 404, doc
    ahead = floor_lesson(console, state="scheduled")
    status, doc = await _call(
        console, "inspector", "POST", f"/api/v1/lessons/{ahead}/notes", {"at_s": 1, "text": "x"}
    )
    assert status == 409 and "has begun" in doc["error"], doc
