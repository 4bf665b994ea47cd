"""Least privilege: an account limited to one school sees that school's classrooms,
lessons, recordings, timetable, pairing reports, network profiles, bandwidth and alerts
only (404 for the others, lists filtered); the county sees all. Its changes stay inside
the school too: scheduling or changing a lesson or a network profile that involves
another school's classroom answers 403, naming who must do it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import icalendar
import pytest
from console.harness import Console
from console.recording_seed import seed_lesson, seed_recording
from sqlalchemy import select

from controller.agents.alerts import raise_alert
from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.daemon import ControllerConfig
from controller.auth.accounts import add_user, create_api_token
from controller.auth.scope import set_school
from controller.common.errors import InvalidRequest
from controller.db.models import AlertState, Classroom, Pairing
from controller.network.profiles import assign_profile, parse_profile_text, put_profile
from controller.timetable.setup import apply_setup

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
# Lessons to come (the timetable's tests change them): a Monday, 09:00 in Shanghai.
T1 = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)
LESSON = timedelta(minutes=40)
TERM = """
[[term]]
id = "spring-2027"
start = 2027-03-01
end = 2027-03-28
"""
PROFILE = """
name = "{name}"
uplink_kbps = 20000
classroom_cap_kbps = 8200

[[ladder]]
name = "720p"
width = 1280
height = 720
kbps = 2000
"""


@pytest.fixture
def county(console: Console, controller_config: ControllerConfig) -> dict[str, str]:
    """A lesson joining both schools ("shared", recorded in both rooms), one inside City
    School ("city", recorded by its lead), and a Village School technician's token."""
    keys = ServerKeys.load_or_create(controller_config.state_dir)
    with console.db() as s:
        add_classroom(s, "city-102", "City 102", "City School", keys.public)
        add_user(s, "tech-village", "technician", None)
        set_school(s, "tech-village", "Village School")
        token = create_api_token(s, "tech-village")
    shared = seed_lesson(console.db, "city-101", ["village-201"], T0, T0 + timedelta(seconds=6))
    city = seed_lesson(
        console.db,
        "city-101",
        ["city-102"],
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=1, seconds=6),
    )
    storage = controller_config.storage_dir
    seed_recording(console.db, storage, shared, "city-101")
    seed_recording(console.db, storage, shared, "village-201")
    seed_recording(console.db, storage, city, "city-101")
    return {"shared": shared, "city": city, "token": token}


async def _get(http: aiohttp.ClientSession, base: str, path: str) -> tuple[int, Any]:
    async with http.get(base + path) as r:
        body = await r.json() if r.content_type == "application/json" else await r.read()
        return r.status, body


async def test_a_school_technician_sees_only_its_school(
    console: Console, county: dict[str, str]
) -> None:
    shared, city = county["shared"], county["city"]
    headers = {"Authorization": f"Bearer {county['token']}"}
    async with console.session(headers=headers) as http:
        status, rooms = await _get(http, console.base, "/api/v1/classrooms")
        assert status == 200 and [r["id"] for r in rooms] == ["village-201"]
        # The pickers' light list is scoped the same way, and holds no health.
        status, names = await _get(http, console.base, "/api/v1/classrooms?view=names")
        assert status == 200
        assert names == [
            {"id": "village-201", "name": rooms[0]["name"], "school": "Village School"}
        ]
        status, refused = await _get(http, console.base, "/api/v1/classrooms?view=health")
        assert status == 400 and "view='health' is not known" in refused["error"]
        assert "view=names" in refused["error"]
        status, board = await _get(http, console.base, "/api/v1/dashboard")
        assert status == 200 and board["agents"]["offline"] == 1
        assert [c["id"] for c in board["agents"]["classrooms"]] == ["village-201"]
        _, me = await _get(http, console.base, "/api/v1/session")
        assert me["school"] == "Village School"
        status, lessons = await _get(http, console.base, "/api/v1/lessons")
        assert status == 200 and [x["id"] for x in lessons] == [shared]
        status, found = await _get(http, console.base, "/api/v1/recordings")
        assert status == 200 and found["total"] == 1
        assert [(x["lesson"], x["classroom"]) for x in found["recordings"]] == [
            (shared, "village-201")
        ]
        # A lesson both schools take: only this school's recordings of it.
        status, doc = await _get(http, console.base, f"/api/v1/lessons/{shared}")
        assert status == 200 and [r["classroom"] for r in doc["recordings"]] == ["village-201"]
        status, cat = await _get(http, console.base, f"/api/v1/lessons/{shared}/recordings")
        assert status == 200 and [c["classroom"] for c in cat["classrooms"]] == ["village-201"]
        status, _ = await _get(
            http, console.base, f"/api/v1/recordings/{shared}/village-201/teacher.mp4"
        )
        assert status == 200
        # Everything of the other school is as if it did not exist.
        for path in (
            "/api/v1/classrooms/city-101",
            "/api/v1/classrooms/city-101/health",
            f"/api/v1/lessons/{city}",
            f"/api/v1/lessons/{city}/recordings",
            f"/api/v1/lessons/{city}/floor",
            f"/api/v1/recordings/{shared}/city-101/teacher.mp4",
            f"/api/v1/recordings/{city}/city-101/teacher.mp4",
        ):
            status, body = await _get(http, console.base, path)
            assert status == 404, (path, status, body)
            assert "school 'Village School'" in body["error"], path
        async with http.post(
            f"{console.base}/api/v1/classrooms/city-101/actions", json={"action": "doctor"}
        ) as r:
            assert r.status == 404  # not even 409 "agent not connected": not its classroom
        async with http.post(
            f"{console.base}/api/v1/classrooms/village-201/actions", json={"action": "doctor"}
        ) as r:
            assert r.status == 409  # its own: allowed, the agent is simply not connected


@pytest.mark.parametrize("role", ["inspector", "admin", "technician"])
async def test_county_accounts_see_every_school(
    console: Console, county: dict[str, str], role: str
) -> None:
    async with console.session(headers=console.bearer(role)) as http:
        _, rooms = await _get(http, console.base, "/api/v1/classrooms")
        assert {r["id"] for r in rooms} == {"city-101", "city-102", "village-201"}
        _, found = await _get(http, console.base, "/api/v1/recordings")
        assert found["total"] == 3
        status, _ = await _get(http, console.base, f"/api/v1/lessons/{county['city']}")
        assert status == 200


def test_set_school_checks_the_school_and_keeps_admins_county_wide(console: Console) -> None:
    with console.db() as s:
        with pytest.raises(InvalidRequest, match="known schools: City School, Village School"):
            set_school(s, "technician", "Nowhere School")
        with pytest.raises(InvalidRequest, match="always sees the county"):
            set_school(s, "admin", "City School")
        set_school(s, "inspector", "City School")
        set_school(s, "inspector", None)


@pytest.fixture
def schools(console: Console, controller_config: ControllerConfig) -> dict[str, Any]:
    """Lessons to come: one each school keeps to itself and one they share; a pairing of
    City School with Village School and one with Town School; an alert in each school; a
    network profile each school uses; and Village School's scheduler and technician."""
    keys = ServerKeys.load_or_create(controller_config.state_dir)
    headers = {}
    with console.db() as s:
        add_classroom(s, "city-102", "City 102", "City School", keys.public)
        add_classroom(s, "village-202", "Village 202", "Village School", keys.public)
        for user, role in (("sched-village", "scheduler"), ("tech-village", "technician")):
            add_user(s, user, role, None)
            set_school(s, user, "Village School")
            headers[role] = {"Authorization": f"Bearer {create_api_token(s, user)}"}
        apply_setup(s, TERM)
        for pairing, supported in (("p-city-village", "Village"), ("p-city-town", "Town")):
            s.add(
                Pairing(
                    id=pairing,
                    supporting_school_id="City School",
                    supported_school_ids=[f"{supported} School"],
                    forms=[],
                    start_date=date(2027, 2, 1),
                    end_date=date(2027, 7, 15),
                )
            )
        s.commit()
        for name, school, room in (
            ("city-std", "City School", "city-102"),
            ("village-std", "Village School", "village-202"),
        ):
            put_profile(s, parse_profile_text(PROFILE.format(name=name), name), "tests")
            assign_profile(s, name, school=school)
            assign_profile(s, name, classroom=room)
        for room in ("city-101", "village-201"):
            raise_alert(s, room, "disk_low", "disk 95% full", datetime.now(UTC))
        alerts = {a.classroom_id: str(a.id) for a in s.scalars(select(AlertState))}
    lessons = {}
    for hour, (name, lead, receiver) in enumerate(
        (
            ("shared", "city-101", "village-201"),
            ("city", "city-101", "city-102"),
            ("village", "village-201", "village-202"),
        )
    ):
        start = T1 + timedelta(hours=hour)
        lessons[name] = seed_lesson(console.db, lead, [receiver], start, start + LESSON)
    return {"lessons": lessons, "alerts": alerts, "headers": headers}


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as r:
        body = await r.json() if r.content_type == "application/json" else await r.read()
        return r.status, body


def _at(hours: float) -> dict[str, str]:
    start = T1 + timedelta(hours=hours)
    return {"start": start.isoformat(), "end": (start + LESSON).isoformat()}


async def test_a_school_sees_its_own_timetable_calendar_and_pairings(
    console: Console, schools: dict[str, Any]
) -> None:
    ids, api = schools["lessons"], console.base + "/api/v1"
    week = {"from": "2027-03-01", "to": "2027-03-07"}
    term = {"from": "2027-03-01", "to": "2027-03-31"}
    async with console.session(headers=schools["headers"]["technician"]) as http:
        status, got = await _call(http, "GET", f"{api}/timetable", params=week)
        assert status == 200 and [x["id"] for x in got["lessons"]] == [
            ids["shared"],
            ids["village"],
        ]
        # Another school's classroom: only the lessons it shares with this school.
        _, got = await _call(
            http, "GET", f"{api}/timetable", params={**week, "classroom": "city-101"}
        )
        assert [x["id"] for x in got["lessons"]] == [ids["shared"]]
        _, raw = await _call(http, "GET", f"{api}/timetable.ics", params={"school": "City School"})
        events = icalendar.Calendar.from_ical(raw).walk("VEVENT")
        assert [str(e["uid"]) for e in events] == [f"{ids['shared']}@classbridge"]
        status, reports = await _call(http, "GET", f"{api}/reports/pairings", params=term)
        assert status == 200 and [r["pairing"] for r in reports] == ["p-city-village"]
        _, text = await _call(
            http, "GET", f"{api}/reports/pairings", params={**term, "format": "csv"}
        )
        assert b"p-city-village" in text and b"p-city-town" not in text
    async with console.session(headers=console.bearer("inspector")) as http:
        _, got = await _call(http, "GET", f"{api}/timetable", params=week)
        assert {x["id"] for x in got["lessons"]} == set(ids.values())
        _, reports = await _call(http, "GET", f"{api}/reports/pairings", params=term)
        assert [r["pairing"] for r in reports] == ["p-city-town", "p-city-village"]


async def test_a_school_sees_its_own_network_assignments_and_bandwidth(
    console: Console, schools: dict[str, Any]
) -> None:
    api = console.base + "/api/v1"
    seen = {}
    for who, headers in (
        ("village", schools["headers"]["technician"]),
        ("county", console.bearer("inspector")),
    ):
        async with console.session(headers=headers) as http:
            status, profiles = await _call(http, "GET", f"{api}/network-profiles")
            assert status == 200
            status, bandwidth = await _call(http, "GET", f"{api}/bandwidth")
            assert status == 200
        seen[who] = (
            {p["name"]: (p["schools"], p["classrooms"]) for p in profiles},
            [s["school"] for s in bandwidth["schools"]],
        )
    assert seen["village"] == (
        {"city-std": ([], []), "village-std": (["Village School"], ["village-202"])},
        ["Village School"],
    )
    assert seen["county"] == (
        {
            "city-std": (["City School"], ["city-102"]),
            "village-std": (["Village School"], ["village-202"]),
        },
        ["City School", "Village School"],
    )


async def test_a_school_acknowledges_and_silences_only_its_own_alerts(
    console: Console, schools: dict[str, Any]
) -> None:
    alerts, api = schools["alerts"], console.base + "/api/v1"
    async with console.session(headers=schools["headers"]["technician"]) as http:
        _, board = await _call(http, "GET", f"{api}/dashboard")
        assert [a["classroom"] for a in board["alerts"]] == ["village-201"]
        for path, body in (("ack", None), ("silence", {"hours": 2})):
            for alert in (alerts["city-101"], "999999", "not-a-number"):
                status, got = await _call(http, "POST", f"{api}/alerts/{alert}/{path}", json=body)
                assert status == 404, (path, alert, got)
                assert "school 'Village School'" in got["error"]
        status, got = await _call(http, "POST", f"{api}/alerts/{alerts['village-201']}/ack")
        assert status == 200 and got["acknowledged_by"] == "tech-village"
    with console.db() as s:
        city = s.get(AlertState, int(alerts["city-101"]))
        assert city is not None and city.acknowledged_by is None and city.silenced_until is None
    async with console.session(headers=console.bearer("technician")) as http:
        status, _ = await _call(http, "POST", f"{api}/alerts/{alerts['city-101']}/ack")
        assert status == 200


def _refusal(body: dict[str, Any], named: str) -> None:
    """A 403 for a school-scoped account names what is outside, its school, and who may."""
    assert named in body["error"], body
    assert "school 'Village School'" in body["error"] and "county account" in body["error"]


async def test_a_school_scheduler_schedules_and_changes_only_its_own_lessons(
    console: Console, schools: dict[str, Any]
) -> None:
    ids, api = schools["lessons"], console.base + "/api/v1"
    village = f"{api}/lessons/{ids['village']}"
    city = {"lead": "city-101", "receivers": ["village-201"], **_at(5)}
    own = {"lead": "village-202", "receivers": ["village-201"], **_at(5)}
    async with console.session(headers=schools["headers"]["scheduler"]) as http:
        for path in ("lessons", "lessons/check"):
            status, body = await _call(http, "POST", f"{api}/{path}", json=city)
            assert status == 403, (path, body)
            _refusal(body, "classroom 'city-101'")
        status, body = await _call(http, "POST", f"{api}/lessons/check", json=own)
        assert status == 200 and body["ok"], body
        check_city = {**own, "lesson": ids["city"]}
        status, body = await _call(http, "POST", f"{api}/lessons/check", json=check_city)
        assert status == 404, body
        status, body = await _call(http, "POST", f"{api}/lessons", json=own)
        assert status == 201, body
        # Another school's lesson is not there; one shared with it is seen, not changed.
        for lesson, want in ((ids["city"], 404), (ids["shared"], 403)):
            for path, body in (("override", {"action": "cancel"}), ("move", _at(6))):
                url = f"{api}/lessons/{lesson}/{path}"
                status, got = await _call(http, "POST", url, json=body)
                assert status == want, (lesson, path, got)
        _refusal(got, "classroom 'city-101'")
        swap = {"action": "swap_lead", "lead": "city-102"}
        status, got = await _call(http, "POST", f"{village}/override", json=swap)
        assert status == 403
        _refusal(got, "classroom 'city-102'")
        status, got = await _call(http, "POST", f"{village}/move", json=_at(6))
        assert status == 200, got
        cancel = {"action": "cancel"}
        status, got = await _call(http, "POST", f"{village}/override", json=cancel)
        assert status == 200 and got["state"] == "cancelled"
    async with console.session(headers=console.bearer("scheduler")) as http:
        status, body = await _call(http, "POST", f"{api}/lessons", json={**city, **_at(7)})
        assert status == 201, body


async def test_a_school_scheduler_imports_only_its_own_rows(
    console: Console, schools: dict[str, Any]
) -> None:
    url = console.base + "/api/v1/timetable/import"
    own = b"2027-03-02,10:00,10:40,synchronous,village-201,village-202\n"
    city = b"2027-03-03,10:00,10:40,synchronous,city-101,village-201\n"
    header = b"date,start,end,kind,lead,receivers\n"
    async with console.session(headers=schools["headers"]["scheduler"]) as http:
        params = {"term": "spring-2027", "mode": "good-rows"}
        status, body = await _call(http, "POST", url, params=params, data=header + own + city)
        assert status == 403 and not body["written"] and body["created"] == []
        assert [(p["row"], p["code"]) for p in body["problems"]] == [(3, "out_of_scope")]
        _refusal(body, "classroom 'city-101'")
        params["mode"] = "commit"
        status, body = await _call(http, "POST", url, params=params, data=header + own)
        assert status == 200 and body["written"] and len(body["created"]) == 1, body


async def test_a_school_scheduler_assigns_and_changes_only_its_own_profiles(
    console: Console, schools: dict[str, Any]
) -> None:
    api = console.base + "/api/v1/network-profiles"
    toml = {"Content-Type": "application/toml"}
    with console.db() as s:  # a profile only one of City School's classrooms uses
        put_profile(s, parse_profile_text(PROFILE.format(name="room-std"), "room-std"), "tests")
        assign_profile(s, "room-std", classroom="city-101")
    async with console.session(headers=schools["headers"]["scheduler"]) as http:
        for name, want, used_by in (
            ("city-std", 403, "school 'City School' is outside"),
            ("room-std", 403, "classroom 'city-101' (of school 'City School') is outside"),
            ("village-std", 200, ""),
            ("new-std", 201, ""),
        ):
            text = PROFILE.format(name=name)
            status, body = await _call(http, "PUT", f"{api}/{name}", data=text, headers=toml)
            assert status == want, (name, body)
            if used_by:  # changing it would reach City School's classrooms
                _refusal(body, used_by)
        for target, want in (
            ({"classroom": "city-101"}, 404),
            ({"school": "City School"}, 404),
            ({"classroom": "village-201"}, 200),
            ({"school": "Village School"}, 200),
        ):
            status, body = await _call(http, "POST", f"{api}/new-std/assign", json=target)
            assert status == want, (target, body)
    with console.db() as s:
        assert [r.network_profile for r in s.scalars(select(Classroom).order_by(Classroom.id))] == [
            "room-std",
            "city-std",
            "new-std",
            "village-std",
        ]
