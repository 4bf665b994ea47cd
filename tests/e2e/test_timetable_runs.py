"""A small timetable runs by itself: three lessons of three kinds, created up front through
the JSON API, start on time and are recorded with no human action."""

from __future__ import annotations

import json
import pathlib
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from benchlib.rig import LessonRig

# Solo: each test times lessons going live to within 2 s and measures a recording to 99 %;
# on a CI machine shared with another worker a starved agent once lost 0.5 s of its own
# camera (97.7 %) and a quarter of its received copy, which is the neighbour's cost, not
# the product's. These run after the suite, alone, like the fault suite.
pytestmark = [pytest.mark.e2e, pytest.mark.solo, pytest.mark.timeout(300)]
CITY, VILLAGE = "city-1-101", "village-1-201"


@pytest.fixture
def rig(tmp_path: pathlib.Path) -> Iterator[LessonRig]:
    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, prepare_s=3.0, segment_seconds=4.0)
    try:
        tokens = {cid: rig.add_classroom(cid) for cid in (CITY, VILLAGE)}
        rig.start_controller()
        for cid, token in tokens.items():
            rig.enrol_and_start_agent(cid, token)
        rig.wait_online([CITY, VILLAGE])
        yield rig
    finally:
        rig.stop()


def _post(rig: LessonRig, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        rig.api + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **rig.auth_headers},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10, context=rig.ssl_context()) as resp:
        return json.loads(resp.read())


def test_three_lessons_of_three_kinds_run_on_time(rig: LessonRig) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=12)
    plan = [  # (kind, lead, receiver, start offset, seconds)
        ("synchronous", CITY, VILLAGE, 0, 20),
        ("master_teacher", CITY, VILLAGE, 20, 20),  # back to back, broadcast only
        ("research", VILLAGE, CITY, 24 + 20, 20),  # multi-party, the other way round
    ]
    lessons = []
    for kind, lead, receiver, offset, seconds in plan:
        start = t0 + timedelta(seconds=offset)
        lessons.append(
            _post(
                rig,
                "/lessons",
                {
                    "kind": kind,
                    "lead": lead,
                    "receivers": [receiver],
                    "start": start.isoformat(),
                    "end": (start + timedelta(seconds=seconds)).isoformat(),
                    "subject": "music",
                },
            )
        )
    assert [x["kind"] for x in lessons] == ["synchronous", "master_teacher", "research"]
    for lesson in lessons:
        rig.wait_lesson(lesson["id"], ("uploaded",), 150)

    for lesson in lessons:
        doc = rig.get(f"/lessons/{lesson['id']}")
        start = datetime.fromisoformat(doc["start_at"])
        live = next(e for e in doc["events"] if e["to"] == "live")
        late = (datetime.fromisoformat(live["at"]) - start).total_seconds()
        assert -0.5 <= late <= 2.0, f"lesson {doc['id']} went live {late:.2f} s after its time"
        catalogue = rig.catalogue(lesson["id"])
        rooms = {r["classroom"]: r for r in catalogue["classrooms"]}
        assert set(rooms) == {CITY, VILLAGE}
        for room in rooms.values():  # each agent's recorder ran from the lesson's start
            assert room["runs"][0]["started_s"] <= 2.0, room["runs"]
        lead, receiver = rooms[doc["lead"]], rooms[doc["receivers"][0]]
        assert lead["coverage"]["ratio"] >= 0.99, (
            doc["kind"],
            lead["coverage"]["ratio"],
            lead["coverage"].get("gaps"),
            [(t["key"], t["covered_s"], t["gaps"]) for t in lead["coverage"]["tracks"]],
        )
        received = [
            t
            for t in receiver["coverage"]["tracks"]
            if t["direction"] == "recv" and t["kind"] == "video"
        ]
        # The receiver's copy of the lead's feeds: 19.8-20 of 20 s alone; 0.9 leaves room
        # for a keyframe wait after the lesson goes live.
        assert received and min(t["ratio"] for t in received) >= 0.9, [
            (doc["kind"], t["key"], t["covered_s"], t["gaps"]) for t in received
        ]
        sent_back = [t for t in lead["coverage"]["tracks"] if t["direction"] == "recv"]
        if doc["kind"] == "master_teacher":  # broadcast only: nothing comes back
            assert sent_back == []
            assert not [t for t in receiver["coverage"]["tracks"] if t["direction"] == "send"]
        else:
            assert sent_back, "the lead should record the receiving classroom"
        if doc["kind"] == "research":  # every site sends its teacher camera to the others
            got = {t["key"] for t in lead["coverage"]["tracks"] if t["direction"] == "recv"}
            assert f"{doc['receivers'][0]}-teacher" in got, got


def test_live_lesson_extended_then_switched_to_broadcast_only(rig: LessonRig) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
    lesson = _post(
        rig,
        "/lessons",
        {
            "lead": CITY,
            "receivers": [VILLAGE],
            "start": start.isoformat(),
            "end": (start + timedelta(seconds=16)).isoformat(),
        },
    )
    rig.wait_lesson(lesson["id"], ("live",), 30)
    _post(rig, f"/lessons/{lesson['id']}/override", {"action": "extend", "minutes": 0.25})
    rig.wait("10 s into the lesson", lambda: datetime.now(UTC) >= start + timedelta(seconds=10), 30)
    _post(rig, f"/lessons/{lesson['id']}/override", {"action": "broadcast_only"})
    doc = rig.wait_lesson(lesson["id"], ("uploaded",), 120)
    assert doc["end_at"] == (start + timedelta(seconds=31)).isoformat()
    details = " | ".join(e["detail"] for e in doc["events"])
    assert "extended by 0.25 min" in details and "broadcast only" in details
    rooms = {r["classroom"]: r for r in rig.catalogue(lesson["id"])["classrooms"]}
    lead = rooms[CITY]["coverage"]
    # the lead recorded all 31 s of its own camera, through the change
    assert lead["ratio"] >= 0.99 and lead["scheduled_s"] == 31.0
    # and stopped receiving the students when the lesson went broadcast only
    [back] = [t for t in lead["tracks"] if t["direction"] == "recv" and t["kind"] == "video"]
    assert 8.0 <= back["covered_s"] <= 14.0, back
    received = [
        t
        for t in rooms[VILLAGE]["coverage"]["tracks"]
        if t["direction"] == "recv" and t["kind"] == "video"
    ]
    # (the received copy: see the test above)
    assert min(t["ratio"] for t in received) >= 0.9, [(t["key"], t["gaps"]) for t in received]
