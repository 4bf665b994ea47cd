"""Lesson analytics (S-T) on a real controller: a lesson's figures from the timelines its
rooms sent, coded at 30 s or at the interval asked for; the refusals say what was wrong."""

from __future__ import annotations

from typing import Any

from console.floor_seed import floor_lesson
from console.harness import Console

from controller.analytics.store import store_talk
from controller.auth.accounts import add_user, create_api_token
from controller.auth.scope import set_school
from controller.db.models import Classroom, Lesson
from controller.db.session import as_utc
from protocols.messages import TalkTimeline


async def _get(
    console: Console, path: str, headers: dict[str, str] | None, body: bytes = b""
) -> tuple[int, Any]:
    async with (
        console.session(headers=headers or {}) as http,
        http.request("GET", f"{console.base}{path}", data=body or None) as r,
    ):
        return r.status, await r.json()


def _talk(console: Console, lesson_id: str, classroom: str, codes: str, late_s: int = 0) -> None:
    with console.db() as s:
        lesson = s.get(Lesson, lesson_id)
        assert lesson is not None
        start = as_utc(lesson.start_at).timestamp() + late_s
        store_talk(s, lesson, classroom, TalkTimeline(start=start, codes=codes))
        s.commit()


async def test_a_lessons_st_figures_and_the_receiving_rooms_turns(console: Console) -> None:
    lesson = floor_lesson(console, state="recorded")
    # 40 minutes: a 10-minute talk, then question (30 s) and answer (30 s) by turns
    # between the two receiving rooms, then the teacher again.
    lead, r1, r2 = "T" * 600, "." * 600, "." * 600
    for i in range(15):
        lead += "T" * 30 + "." * 30
        r1 += "." * 30 + ("S" * 30 if i % 2 == 0 else "." * 30)
        r2 += "." * 30 + ("." * 30 if i % 2 == 0 else "S" * 30)
    lead += "T" * 900
    _talk(console, lesson, "city-101", lead)
    _talk(console, lesson, "village-201", r1 + "." * 900)
    _talk(console, lesson, "village-202", r2[:-5] + "." * 905, late_s=5)  # 5 s late
    status, doc = await _get(
        console, f"/api/v1/lessons/{lesson}/analytics", console.bearer("scheduler")
    )
    assert status == 200, doc
    assert doc["samples"] == "T" * 20 + "TS" * 15 + "T" * 30
    assert (doc["n"], doc["n_t"]) == (80, 65)
    assert doc["rt"] == 0.8125 and doc["ch"] == 0.375
    assert (doc["type"], doc["type_zh"]) == ("lecture", "讲授型")
    assert doc["teacher_talk_s"] == 600 + 15 * 30 + 900
    assert doc["student_talk_s"] == 15 * 30
    assert doc["reported"] == ["city-101", "village-201", "village-202"]
    assert len(doc["seconds"]) == doc["length_s"] == 2400
    assert doc["rooms"] == [
        {"classroom": "village-201", "turns": 8, "talk_s": 240},
        {"classroom": "village-202", "turns": 7, "talk_s": 210},
    ]
    # Coded every 60 s instead: a minute holds a question and its answer.
    status, doc = await _get(
        console, f"/api/v1/lessons/{lesson}/analytics?interval_s=60", console.bearer("inspector")
    )
    assert status == 200 and doc["n"] == 40 and doc["interval_s"] == 60, doc


async def test_no_figures_without_timelines_and_refusals_say_what_was_wrong(
    console: Console,
) -> None:
    lesson = floor_lesson(console, state="recorded")
    path = f"/api/v1/lessons/{lesson}/analytics"
    status, doc = await _get(console, path, console.bearer("admin"))
    assert status == 200, doc  # nobody reported yet: no figures, every second unheard
    assert (doc["n"], doc["rt"], doc["ch"], doc["type"]) == (0, None, None, None)
    assert doc["reported"] == [] and set(doc["seconds"]) == {"?"}
    status, doc = await _get(console, path, None)
    assert status == 401, doc
    status, doc = await _get(console, path, console.bearer("teacher"))
    assert status == 403, doc
    for bad in ("0", "601", "half", "30.5"):
        status, doc = await _get(console, f"{path}?interval_s={bad}", console.bearer("admin"))
        assert status == 400 and "interval_s must be whole seconds from 1 to 600" in doc["error"]
    status, doc = await _get(console, "/api/v1/lessons/nope/analytics", console.bearer("admin"))
    assert status == 404 and "nope" in doc["error"], doc
    status, doc = await _get(console, path, console.bearer("admin"), body=b"x" * (1024 * 1024 + 1))
    assert status == 413, doc
    # A school's account sees only the lessons of its school's classrooms (another
    # school's lesson is not there for it, as everywhere in the API).
    with console.db() as s:
        s.add(
            Classroom(id="hill-301", name="Hill 301", school="Hill School", inventory=[], health={})
        )
        s.commit()
        add_user(s, "tech-elsewhere", "technician", None)
        set_school(s, "tech-elsewhere", "Hill School")
        token = create_api_token(s, "tech-elsewhere")
    status, doc = await _get(console, path, {"Authorization": f"Bearer {token}"})
    assert status == 404 and "Hill School" in doc["error"], doc
