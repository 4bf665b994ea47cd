"""The emergency switch (线下线上瞬时切换) on a real controller: one audited action holds a
school's lessons online only (broadcast one way) until switched back, which restores
exactly what it changed; a school account switches only its own school; every refusal
says what was wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from console.harness import Console
from sqlalchemy import select

from controller.auth.accounts import add_user, create_api_token
from controller.auth.scope import set_school
from controller.db.models import AuditEntry, Classroom, Lesson, LessonEvent
from controller.emergency.store import apply_to_lesson
from controller.lessons.scheduling import schedule_lesson


def _lesson(console: Console, lead: str, receivers: list[str], hours: float, **kw: Any) -> str:
    start = datetime.now(UTC) + timedelta(hours=hours)
    with console.db() as s:
        lesson = schedule_lesson(s, lead, receivers, start, start + timedelta(minutes=40))
        for key, value in kw.items():
            setattr(lesson, key, value)
        s.commit()
        return lesson.id


async def _call(
    console: Console,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async with (
        console.session(headers=headers or console.bearer("scheduler")) as http,
        http.request(method, f"{console.base}/api/v1{path}", json=body) as r,
    ):
        return r.status, await r.json()


def _one_way(console: Console, *ids: str) -> list[bool]:
    with console.db() as s:
        return [bool(s.get(Lesson, i).one_way) for i in ids]  # type: ignore[union-attr]


async def test_a_school_goes_online_only_and_comes_back_as_it_was(console: Console) -> None:
    with console.db() as s:
        s.add(
            Classroom(
                id="town-301",
                name="Town 301",
                school="Town School",
                online=False,
                inventory=[],
                health={},
            )
        )
        s.commit()
    # Village School takes part in three lessons; one was broadcast only already.
    a = _lesson(console, "city-101", ["village-201"], 1)
    b = _lesson(console, "village-201", ["town-301"], 2)
    c = _lesson(console, "city-101", ["village-201"], 3, one_way=True)
    later = _lesson(console, "city-101", ["village-201"], 40)  # after the switch's day
    other = _lesson(console, "city-101", ["town-301"], 6)  # not Village School's
    over = _lesson(console, "city-101", ["village-201"], -3, state="recorded")

    status, doc = await _call(
        console,
        "POST",
        "/emergency",
        {"school": "Village School", "hours": 24, "reason": "大雪停课 snow"},
    )
    assert status == 201, doc
    assert doc["active"] and doc["scope"] == "school" and doc["set_by"] == "console:scheduler"
    held = {e["lesson"]: e for e in doc["lessons"]}
    assert set(held) == {a, b, c}
    assert held[c]["one_way_before"] is True and held[a]["one_way_before"] is False
    # No HLS origin on this controller: held one way, and the switch says it is not public.
    assert all("not published" in str(e["problem"]) for e in held.values())
    assert _one_way(console, a, b, c, later, other, over) == [True, True, True, False, False, False]

    # Another switch on the same school, or on the county, is refused while this one holds.
    for school in ("Village School", None):
        status, again = await _call(
            console, "POST", "/emergency", {"school": school, "reason": "x"}
        )
        assert status == 409 and f"switch {doc['id']} already holds" in again["error"], again

    # A lesson added during the switch is held as it is prepared.
    added = _lesson(console, "town-301", ["village-201"], 5)
    with console.db() as s:
        lesson = s.get(Lesson, added)
        assert lesson is not None
        assert apply_to_lesson(s, lesson, None) is not None
    assert _one_way(console, added) == [True]

    status, listed = await _call(console, "GET", "/emergency", headers=console.bearer("inspector"))
    assert status == 200 and listed[0]["id"] == doc["id"] and listed[0]["active"]

    status, ended = await _call(console, "POST", f"/emergency/{doc['id']}/end")
    assert status == 200 and not ended["active"] and ended["ended_by"] == "console:scheduler"
    # Back as they were: c stays broadcast only, the others are two-way again.
    assert _one_way(console, a, b, c, added) == [False, False, True, False]
    status, again = await _call(console, "POST", f"/emergency/{doc['id']}/end")
    assert status == 409 and "already switched back" in again["error"]

    with console.db() as s:
        events = [
            e.detail for e in s.scalars(select(LessonEvent).where(LessonEvent.lesson_id == a))
        ]
        audited = [
            (x.username, x.action)
            for x in s.scalars(
                select(AuditEntry).where(AuditEntry.action.like("POST /api/v1/emergency%"))
            )
        ]
    assert any("online only" in e and "emergency switch" in e for e in events), events
    assert any("switched back by console:scheduler: back to two-way" in e for e in events), events
    assert ("scheduler", "POST /api/v1/emergency") in audited
    assert ("scheduler", "POST /api/v1/emergency/{switch}/end") in audited


async def test_who_may_switch_and_every_refusal_names_the_problem(console: Console) -> None:
    with console.db() as s:
        add_user(s, "sched-village", "scheduler", None)
        set_school(s, "sched-village", "Village School")
        village = {"Authorization": f"Bearer {create_api_token(s, 'sched-village')}"}
    for role in ("inspector", "technician", "teacher"):
        status, doc = await _call(
            console,
            "POST",
            "/emergency",
            {"school": "Village School", "reason": "x"},
            headers=console.bearer(role),
        )
        assert status == 403, (role, doc)
    # A school account: its own school only, never the county.
    for school in ("City School", None):
        status, doc = await _call(
            console, "POST", "/emergency", {"school": school, "reason": "x"}, headers=village
        )
        assert status == 403 and "Village School" in doc["error"], doc

    cases: list[tuple[Any, str]] = [
        ({"school": "Nowhere School", "reason": "x"}, "no classroom belongs to school"),
        ({"school": "Village School"}, "give the reason"),
        ({"school": "Village School", "reason": "x", "hours": 0}, "'hours'"),
        ({"school": "Village School", "reason": "x", "hours": "a day"}, "'hours'"),
        (
            {"school": "Village School", "reason": "x", "until": "2001-01-01T00:00Z"},
            "not in the future",
        ),
        ({"school": "Village School", "reason": "x", "until": "tomorrow"}, "'until'"),
        ({"school": "Village School", "reason": "x", "until": "+1h", "hours": 2}, "not both"),
        ({"school": "", "reason": "x"}, "'school'"),
        ({"school": "Village School", "reason": "x", "scope": "all"}, "unknown field"),
        (["Village School"], "JSON object"),
    ]
    for body, says in cases:
        status, doc = await _call(console, "POST", "/emergency", body)
        assert status in (400, 404), (body, doc)
        assert says in doc["error"], (body, doc)
    async with (
        console.session(headers=console.bearer("scheduler")) as http,
        http.post(f"{console.base}/api/v1/emergency", data=b"x" * 5000) as r,
    ):
        assert r.status == 413
    status, doc = await _call(console, "POST", "/emergency/999/end")
    assert status == 404 and "does not exist" in doc["error"]
    status, doc = await _call(console, "POST", "/emergency/abc/end")
    assert status == 400

    # The school's own scheduler switches it, and the county's switch is refused meanwhile.
    status, doc = await _call(
        console,
        "POST",
        "/emergency",
        {"school": "Village School", "reason": "停电"},
        headers=village,
    )
    assert status == 201 and doc["until"] is None, doc  # until switched back
    status, county = await _call(console, "POST", "/emergency", {"school": None, "reason": "x"})
    assert status == 409 and "switch it back first" in county["error"]
    status, doc = await _call(console, "POST", f"/emergency/{doc['id']}/end", headers=village)
    assert status == 200 and not doc["active"]
