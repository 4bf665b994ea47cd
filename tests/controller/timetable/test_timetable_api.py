"""The timetable's JSON API: rules answered with reasons, import by row, iCal, overrides,
reports and the OpenAPI description."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import icalendar
import pytest
from helpers import bearer_headers, loopback_server_tls, loopback_session
from sqlalchemy.orm import Session, sessionmaker
from timetable_fixtures import BAD_CSV, ROOMS, SETUP

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.http_api import HttpApi
from controller.db.session import make_engine, migrate, sessions
from controller.recordings.uploads import UploadService
from controller.storage.local import LocalStorage
from controller.timetable.csv_import import MAX_BYTES, MAX_ROWS, limit_problem
from controller.timetable.setup import apply_setup

T = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)


@pytest.fixture
async def api_auth(
    tmp_path: pathlib.Path, db_url: str
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    url = db_url
    migrate(url)
    db: sessionmaker[Session] = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with db() as s:
        for cid, school in ROOMS.items():
            add_classroom(s, cid, cid, school, keys.public)
        apply_setup(s, SETUP)
    uploads = UploadService(db, LocalStorage(tmp_path / "storage"), lambda a, b: None)
    http = HttpApi(db, uploads, keys, lambda: [])
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    try:
        yield f"https://127.0.0.1:{http.port}/api/v1", bearer_headers(db)
    finally:
        await http.stop()


def _lesson(start: datetime, **kw: object) -> dict[str, object]:
    return {
        "lead": "city-101",
        "receivers": ["village-201"],
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=40)).isoformat(),
        "teacher": "t-wang",
        "subject": "music",
        **kw,
    }


async def test_rules_import_ical_overrides_and_report(
    api_auth: tuple[str, dict[str, str]],
) -> None:
    api, headers = api_auth
    async with loopback_session(headers=headers) as http:
        async with http.get(f"{api}/openapi.json") as r:
            doc = await r.json()
            assert doc["openapi"].startswith("3.1") and "/api/v1/timetable" in doc["paths"]
            # Every feature's paths are in the app's document, and assembling it changed
            # no module's dictionary (controller.common.openapi).
            from controller.app.http_api import BASE
            from controller.timetable.api import OPENAPI_PATHS

            assert "/api/v1/notify/subscriptions" in doc["paths"]
            assert "/api/v1/notify/subscriptions" not in OPENAPI_PATHS
            assert "paths" not in BASE
            # The lesson list: the lessons feature's GET and the timetable's POST.
            assert set(doc["paths"]["/api/v1/lessons"]) == {"get", "post"}
            assert "get" not in OPENAPI_PATHS["/api/v1/lessons"]
        async with http.post(f"{api}/lessons", json=_lesson(T)) as r:
            assert r.status == 201, await r.text()
            first = (await r.json())["id"]
        async with http.post(
            f"{api}/lessons", json=_lesson(T + timedelta(minutes=20), lead="city-102")
        ) as r:
            assert r.status == 409
            reason = (await r.json())["error"]
            assert "'village-201' is already booked" in reason and "teacher 't-wang'" in reason
        async with http.post(f"{api}/lessons", json={"lead": "city-101"}) as r:
            assert r.status == 400 and "'start' is required" in (await r.json())["error"]

        async with http.post(
            f"{api}/timetable/import", params={"term": "spring"}, data=BAD_CSV
        ) as r:
            assert r.status == 422
            got = await r.json()
            assert [p["row"] for p in got["problems"]] == [3, 4, 5, 6] and not got["written"]
        async with http.post(f"{api}/timetable/import", params={"term": "nope"}, data=BAD_CSV) as r:
            assert r.status == 404

        async with http.get(f"{api}/timetable.ics", params={"classroom": "village-201"}) as r:
            assert r.content_type == "text/calendar"
            cal = icalendar.Calendar.from_ical(await r.read())
            assert [str(e["uid"]) for e in cal.walk("VEVENT")] == [f"{first}@classbridge"]
        async with http.get(f"{api}/timetable", params={"teacher": "t-wang"}) as r:
            [row] = (await r.json())["lessons"]
            assert row["id"] == first and row["subject"] == "music"

        base = f"{api}/lessons/{first}/override"
        async with http.post(base, json={"action": "extend", "minutes": 10}) as r:
            assert r.status == 200
            assert (await r.json())["end_at"] == (T + timedelta(minutes=50)).isoformat()
        async with http.post(base, json={"action": "swap_lead", "lead": "village-201"}) as r:
            doc = await r.json()
            assert r.status == 200, doc
            assert doc["lead"] == "village-201" and doc["receivers"] == ["city-101"]
        async with http.post(base, json={"action": "end_now"}) as r:
            assert r.status == 400 and "only a running lesson" in (await r.json())["error"]
        async with http.post(base, json={"action": "broadcast_only"}) as r:
            assert r.status == 200
        async with http.post(base, json={"action": "cancel"}) as r:
            assert (await r.json())["state"] == "cancelled"
        async with http.post(base, json={"action": "explode"}) as r:
            assert r.status == 400

        report = f"{api}/reports/pairings"
        async with http.get(report, params={"from": "2026-03-01", "to": "2026-03-31"}) as r:
            [rep] = await r.json()
            assert rep["pairing"] == "p1" and rep["met"] is False
        async with http.get(
            report, params={"from": "2026-03-01", "to": "2026-03-31", "format": "html"}
        ) as r:
            assert "<svg" in await r.text()
        async with http.get(
            report, params={"from": "2026-03-01", "to": "2026-03-31", "format": "csv"}
        ) as r:  # opens in Excel on a Chinese PC: UTF-8 with a BOM
            raw = await r.read()
            assert raw.startswith(b"\xef\xbb\xbfpairing,quota"), raw[:40]
            assert "attachment" in r.headers["Content-Disposition"]
        async with http.get(report, params={"from": "x"}) as r:
            assert r.status == 400


async def test_import_caps_rows_and_size_naming_the_limit(
    api_auth: tuple[str, dict[str, str]], tmp_path: pathlib.Path
) -> None:
    api, headers = api_auth
    header = b"date,period,kind,lead,receivers,teacher,subject,title\n"
    row = b"2026-03-04,1,synchronous,city-101,village-201,t-wang,music,ok\n"
    too_many = header + row * (MAX_ROWS + 1)
    async with loopback_session(headers=headers) as http:
        async with http.post(
            f"{api}/timetable/import", params={"term": "spring"}, data=too_many
        ) as r:
            got = await r.json()
            assert r.status == 422 and not got["written"]
            [problem] = got["problems"]
            assert problem["code"] == "too_many_rows" and problem["row"] == MAX_ROWS + 2
            assert f"at most {MAX_ROWS}" in problem["message"] and "split it" in problem["message"]
        too_big = header + b"#" * MAX_BYTES
        async with http.post(
            f"{api}/timetable/import", params={"term": "spring"}, data=too_big
        ) as r:
            assert r.status == 413 and str(MAX_BYTES) in (await r.json())["error"]
    # The command line reads files itself: the same caps are in the parser.
    problem = limit_problem(too_big)
    assert problem is not None and problem.code == "too_large" and problem.row == 1
    assert f"at most {MAX_BYTES} bytes (1 MiB)" in str(problem)
    assert limit_problem(header + row * MAX_ROWS) is None
