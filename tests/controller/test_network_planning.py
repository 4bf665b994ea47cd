"""Scheduling against network profiles: the best rung that fits every uplink and classroom
cap, a lower one with the reason when the top does not, a refusal naming the school, the
figures and the lessons it overlaps when none does; the rung stored and answered; and
the live view of planned against measured bandwidth per school."""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers import bearer_headers, loopback_server_tls, loopback_session
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from timetable_fixtures import ROOMS, SETUP
from typer.testing import CliRunner

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.cli import app
from controller.app.http_api import HttpApi
from controller.db.models import Classroom, Lesson
from controller.db.session import database_url, make_engine, migrate, sessions, utcnow
from controller.network.profiles import assign_profile, put_profile
from controller.recordings.uploads import UploadService
from controller.storage.local import LocalStorage
from controller.timetable.csv_import import parse_timetable_csv
from controller.timetable.loading import planner_for
from controller.timetable.planner import Candidate, Planner, Room
from controller.timetable.setup import apply_setup, bell_periods, expand_term, term_calendar
from protocols.network_profile import NetworkProfile, Rung

T0 = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
LADDER = (
    Rung(name="1080p", width=1920, height=1080, kbps=4000),
    Rung(name="720p", width=1280, height=720, kbps=2000),
    Rung(name="360p", width=640, height=360, kbps=800),
)


def _profile(name: str = "county", cap: int = 8200, uplink: int = 0) -> NetworkProfile:
    return NetworkProfile(
        name=name, uplink_kbps=uplink, classroom_cap_kbps=cap, audio_kbps=64, ladder=LADDER
    )


def _cand(ref: str, lead: str, receivers: tuple[str, ...], kind: str = "synchronous") -> Candidate:
    return Candidate(ref, kind, lead, receivers, T0, T0 + timedelta(minutes=40))


def _planner(uplink_s1: int, cap: int = 8200) -> Planner:
    """s1: 'a' (profiled: leads with two videos) and 'c' (no profile, 5000 kbps lead);
    s2: 'b' (profiled receiver). Lesson 1 (c → b, one-way) already puts 5000 on s1."""
    rooms = {
        "a": Room("a", "s1", profile=_profile(cap=cap)),
        "b": Room("b", "s2", profile=_profile()),
        "c": Room("c", "s1", lead_kbps=5000),
        "d": Room("d", "s2"),
    }
    planner = Planner(rooms, {"s1": uplink_s1, "s2": 100_000})
    planner.add(_cand("lesson 1", "c", ("d",), kind="master_teacher"))
    return planner


def test_a_lesson_that_fits_goes_on_the_top_rung() -> None:
    placed = _planner(20_000).place(_cand("new", "a", ("b",)))
    assert placed.problems == () and not placed.lowered
    assert placed.rung is not None and placed.rung.name == "1080p"
    assert placed.candidate.rung == "1080p"
    assert placed.document() == {
        "rung": "1080p",
        "kbps": 4000,
        "reason": "top rung 1080p (4000 kbps) fits",
    }


def test_a_lesson_that_fits_only_lower_is_placed_there_with_the_figures() -> None:
    planner = _planner(12_000)
    placed = planner.place(_cand("new", "a", ("b",)))
    assert placed.problems == () and placed.lowered
    assert placed.candidate.rung == "720p"
    # lead: teacher camera and panel at 1080p + audio = 8064, with lesson 1's 5000
    assert placed.reason == (
        "placed on rung 720p (2000 kbps): at 1080p the school 's1' would send 13064 kbps "
        "over its 12000 kbps uplink with lesson 1"
    )
    # booked at its rung: 2×2000+64 on s1, 2000+64 on s2
    assert planner.sends(placed.candidate) == {"a": 4064, "b": 2064}
    planner.add(placed.candidate)
    assert planner.place(_cand("later", "c", ("b",))).problems  # rooms busy: a conflict


def test_a_classroom_cap_lowers_the_rung_too() -> None:
    placed = _planner(100_000, cap=5000).place(_cand("new", "a", ("b",)))
    assert placed.candidate.rung == "720p"
    assert "classroom 'a' would send 8064 kbps over its classroom cap of 5000 kbps" in (
        placed.reason
    )


def test_a_lesson_that_fits_no_rung_is_refused_with_school_figures_and_overlaps() -> None:
    placed = _planner(6000).place(_cand("new", "a", ("b",)))
    [problem] = placed.problems
    assert problem.code == "bandwidth"
    # at 360p: 2×800+64 = 1664, with lesson 1's 5000
    assert problem.message.startswith(
        "the school 's1' would send 6664 kbps over its 6000 kbps uplink with lesson 1, "
        "even at the lowest rung 360p (800 kbps)"
    ), problem.message
    assert placed.document() is None


def test_rooms_without_a_profile_keep_the_estimates() -> None:
    rooms = {"x": Room("x", "s"), "y": Room("y", "t")}
    placed = Planner(rooms, {"s": 3000}).place(_cand("new", "x", ("y",)))
    assert placed.rung is None and placed.document() is None
    assert [p.code for p in placed.problems] == ["bandwidth"]
    assert "school 's' would send 3100 kbps" in placed.problems[0].message


# -- through the database, the HTTP API and the CLI ---------------------------------------


@pytest.fixture
def db(tmp_path: pathlib.Path) -> sessionmaker[Session]:
    """The timetable fixtures' county (city uplink 10000, village 5000 in the set-up),
    with profiles: city's says 14000 kbps (it wins), village's leaves the uplink unknown."""
    state = tmp_path / "state"
    state.mkdir()
    url = database_url(state)
    migrate(url)
    factory = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(state)
    with factory() as s:
        for cid, school in {**ROOMS, "village-203": "village"}.items():
            add_classroom(s, cid, cid, school, keys.public)
        apply_setup(s, SETUP)
        put_profile(s, _profile("city-fibre", uplink=14_000), "test")
        put_profile(s, _profile("village-dsl"), "test")
        assign_profile(s, "city-fibre", school="city")
        assign_profile(s, "village-dsl", school="village")
    return factory


ONLINE: list[str] = []


@pytest.fixture
async def api_auth(
    db: sessionmaker[Session], tmp_path: pathlib.Path
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    keys = ServerKeys.load_or_create(tmp_path / "state")
    uploads = UploadService(db, LocalStorage(tmp_path / "storage"), lambda a, b: None)
    http = HttpApi(db, uploads, keys, lambda: ONLINE)
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    try:
        yield f"https://127.0.0.1:{http.port}/api/v1", bearer_headers(db)
    finally:
        await http.stop()


def _body(lead: str, receivers: list[str], kind: str = "synchronous") -> dict[str, Any]:
    return {
        "lead": lead,
        "receivers": receivers,
        "kind": kind,
        "start": T0.isoformat(),
        "end": (T0 + timedelta(minutes=40)).isoformat(),
    }


def _send(*bps: float) -> dict[str, object]:
    tracks = [{"track": f"t{i}", "direction": "send", "bitrate_bps": b} for i, b in enumerate(bps)]
    return {"seq": 1, "media": [*tracks, {"track": "r", "direction": "recv", "bitrate_bps": 9e6}]}


async def test_create_answers_placement_and_live_view_compares_plan_and_measure(
    api_auth: tuple[str, dict[str, str]], db: sessionmaker[Session], tmp_path: pathlib.Path
) -> None:
    api, headers = api_auth
    async with loopback_session(headers=headers) as http:
        # city: 8064 of 14000; village: 4064 of 5000 → top rung
        async with http.post(f"{api}/lessons", json=_body("city-101", ["village-201"])) as r:
            first = await r.json()
            assert r.status == 201, first
            assert first["rung"] == "1080p" and first["placement"]["rung"] == "1080p"
        # city would carry 16128 at 1080p; at 720p 8064 + 4064 = 12128 fits
        async with http.post(
            f"{api}/lessons", json=_body("city-102", ["village-202"], "master_teacher")
        ) as r:
            second = await r.json()
            assert r.status == 201, second
            assert second["rung"] == "720p"
            assert second["placement"] == {
                "rung": "720p",
                "kbps": 2000,
                "reason": "placed on rung 720p (2000 kbps): at 1080p the school 'city' would "
                f"send 16128 kbps over its 14000 kbps uplink with lesson {first['id']}",
            }
            assert second["placement"]["reason"] in [e["detail"] for e in second["events"]]
        # village (set-up uplink 5000) already carries 4064: even 360p (1664) is too much
        async with http.post(f"{api}/lessons", json=_body("village-203", [], "open_school")) as r:
            refused = await r.json()
            assert r.status == 409, refused
            [problem] = refused["problems"]
            assert problem["code"] == "bandwidth"
            assert (
                "school 'village' would send 5728 kbps over its 5000 kbps uplink"
                in (problem["message"])
            )
            assert f"lesson {first['id']}" in problem["message"]
            assert "lowest rung 360p (800 kbps)" in problem["message"]
        async with http.get(f"{api}/timetable") as r:
            rungs = {x["id"]: x["rung"] for x in (await r.json())["lessons"]}
            assert rungs == {first["id"]: "1080p", second["id"]: "720p"}
        async with http.get(f"{api}/lessons/{second['id']}") as r:
            assert (await r.json())["rung"] == "720p"

        # both lessons under way; agents report what they send
        with db() as s:
            for lesson_id in (first["id"], second["id"]):
                s.get(Lesson, lesson_id).state = "live"  # type: ignore[union-attr]
            s.get(Classroom, "city-101").health = _send(3_900_000, 2_000_000, 60_000)  # type: ignore[union-attr]
            s.get(Classroom, "city-102").health = _send(1_500_000)  # type: ignore[union-attr]
            s.get(Classroom, "village-201").health = _send(1_000_000)  # type: ignore[union-attr]
            s.commit()
        ONLINE[:] = ["city-101", "village-201"]  # city-102's agent has gone quiet
        try:
            async with http.get(f"{api}/bandwidth") as r:
                view = await r.json()
        finally:
            ONLINE.clear()
    schools = {x["school"]: x for x in view["schools"]}
    city, village = schools["city"], schools["village"]
    assert (city["uplink_kbps"], city["planned_kbps"], city["measured_kbps"]) == (
        14_000,
        8064 + 4064,
        5960.0,
    )
    rooms = {c["classroom"]: c for c in city["classrooms"]}
    assert rooms["city-102"] == {
        "classroom": "city-102",
        "online": False,
        "profile": "city-fibre",
        "cap_kbps": 8200,
        "planned_kbps": 4064,
        "measured_kbps": 0.0,
        "lessons": [second["id"]],
    }
    # village-201 receives the first lesson two-way (its student camera at 1080p + audio);
    # village-202 only watches the broadcast
    assert (village["uplink_kbps"], village["planned_kbps"], village["measured_kbps"]) == (
        5000,
        4064,
        1000.0,
    )

    # the same table from the CLI (online from the stored flag and last heartbeat)
    with db() as s:
        room = s.get(Classroom, "city-101")
        assert room is not None
        room.online, room.last_seen_at = True, utcnow()
        s.commit()
    env = {"CLASSBRIDGE_CONTROLLER_STATE": str(tmp_path / "state")}
    out = CliRunner().invoke(app, ["bandwidth", "--json"], env=env)
    assert out.exit_code == 0, out.output
    cli_city = {x["school"]: x for x in json.loads(out.output)["schools"]}["city"]
    assert (cli_city["planned_kbps"], cli_city["measured_kbps"]) == (12128, 5960.0)
    out = CliRunner().invoke(app, ["bandwidth"], env=env)
    lines = out.output.splitlines()
    assert lines[0].split()[-4:] == ["uplink", "planned", "measured", "kbps"]
    assert any(line.split()[:4] == ["city", "14000", "12128", "5960"] for line in lines), lines


def test_cli_lesson_add_says_where_it_was_placed(
    db: sessionmaker[Session], tmp_path: pathlib.Path
) -> None:
    env = {"CLASSBRIDGE_CONTROLLER_STATE": str(tmp_path / "state")}
    runner = CliRunner()
    when = ["--start", T0.isoformat(), "--duration", "40m", "--kind", "master_teacher"]
    first = runner.invoke(
        app,
        ["lesson", "add", "--lead", "city-101", "--receiver", "village-201", *when],
        env=env,
    )
    assert first.exit_code == 0 and "top rung 1080p (4000 kbps) fits" in first.output
    second = runner.invoke(
        app,
        ["lesson", "add", "--lead", "city-102", "--receiver", "village-202", *when, "--json"],
        env=env,
    )
    assert second.exit_code == 0, second.output
    assert json.loads(second.output)["placement"]["rung"] == "720p"


def test_series_and_csv_rows_are_placed_and_stored_on_their_rung(
    db: sessionmaker[Session],
) -> None:
    with db() as s:
        put_profile(s, _profile("small-room", cap=5000), "test")
        assign_profile(s, "small-room", classroom="city-101")  # overrides city's profile
        result = expand_term(s, "spring")
        assert result.problems == [] and len(result.created) == 3
        assert all(
            "classroom 'city-101' would send 8064 kbps over its classroom cap of 5000 kbps "
            "(profile 'small-room')"
            in note
            and "placed on rung 720p (2000 kbps)" in note
            for note in result.notes
        ), result.notes
        assert {x.rung for x in s.scalars(select(Lesson)).all()} == {"720p"}

        cal = term_calendar(s, "spring")
        csv = b"date,period,kind,lead,receivers\n2026-03-05,1,synchronous,city-101,village-201\n"
        imported = parse_timetable_csv(csv, planner_for(s), cal, bell_periods(s), set())
    assert imported.clean and [c.rung for _, c in imported.good] == ["720p"]
    [(row, placed)] = imported.placements
    assert row == 2 and placed.lowered and placed.document()["rung"] == "720p"  # type: ignore[index]
