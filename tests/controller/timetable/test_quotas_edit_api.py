"""A term's quotas through the API: read (defaults or declared), declare, declare none,
back to the defaults; the quota report follows; every change audited; refusals name the
quota and the field; roles, school scope, size limit and an unknown term."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from helpers import bearer_headers, loopback_server_tls, loopback_session
from quota_seed import lesson
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from timetable_fixtures import ROOMS, SETUP

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.http_api import HttpApi
from controller.auth.scope import set_school
from controller.db.models import AuditEntry
from controller.db.session import make_engine, migrate, sessions
from controller.recordings.uploads import UploadService
from controller.storage.local import LocalStorage
from controller.timetable.quotas import DEFAULT_QUOTAS
from controller.timetable.quotas_api import MAX_BODY_BYTES
from controller.timetable.setup import apply_setup

MONTHLY: dict[str, Any] = {
    "id": "teacher-month",
    "label_zh": "教师每月授课",
    "label_en": "lessons a teacher gives a month",
    "kind": "同步课堂",
    "period": "月",
    "scope": "teacher",
    "min": 2,
}


@pytest.fixture
async def served(
    tmp_path: pathlib.Path, db_url: str
) -> AsyncIterator[tuple[str, sessionmaker[Session]]]:
    migrate(db_url)
    db: sessionmaker[Session] = sessions(make_engine(db_url))
    keys = ServerKeys.load_or_create(tmp_path)
    with db() as s:
        for cid, school in ROOMS.items():
            add_classroom(s, cid, cid, school, keys.public)
        apply_setup(s, SETUP)
        lesson(s, date(2026, 3, 4))
    uploads = UploadService(db, LocalStorage(tmp_path / "storage"), lambda a, b: None)
    http = HttpApi(db, uploads, keys, lambda: [])
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    try:
        yield f"https://127.0.0.1:{http.port}/api/v1", db
    finally:
        await http.stop()


async def _report_ids(http: Any, base: str) -> set[str]:
    async with http.get(f"{base}/reports/quotas", params={"term": "spring", "by": "teacher"}) as r:
        assert r.status == 200
        return {x["quota"] for e in (await r.json())["entries"] for x in e["results"]}


async def test_declare_none_and_back_to_the_defaults_each_audited(
    served: tuple[str, sessionmaker[Session]],
) -> None:
    base, db = served
    url = f"{base}/terms/spring/quotas"
    async with loopback_session(headers=bearer_headers(db, "scheduler")) as http:
        async with http.get(url) as r:
            doc = await r.json()
        assert r.status == 200 and doc["source"] == "defaults"
        assert [q["id"] for q in doc["quotas"]] == [q.id for q in DEFAULT_QUOTAS]
        assert "teacher" in doc["choices"]["scope"] and "any" in doc["choices"]["kind"]
        # What GET sends goes back as it is (its null optional fields are "not set").
        async with http.put(url, json={"quotas": doc["quotas"]}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["source"] == "declared"
        async with http.put(url, json={"quotas": [MONTHLY]}) as r:
            doc = await r.json()
        assert r.status == 200 and doc["source"] == "declared"
        [q] = doc["quotas"]
        assert (q["kind"], q["period"], q["min"]) == ("synchronous", "month", 2)
        assert await _report_ids(http, base) == {"teacher-month"}
        async with http.put(url, json={"quotas": []}) as r:
            doc = await r.json()
        assert r.status == 200 and (doc["source"], doc["quotas"]) == ("declared", [])
        assert await _report_ids(http, base) == set()  # none declared: none checked
        async with http.put(url, json={"defaults": True}) as r:
            doc = await r.json()
        assert r.status == 200 and doc["source"] == "defaults"
        assert len(doc["quotas"]) == len(DEFAULT_QUOTAS)
        assert "teacher-month" not in await _report_ids(http, base)
    with db() as s:
        rows = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "PUT /api/v1/terms/{term}/quotas")
            .order_by(AuditEntry.id)
        ).all()
    assert [r.username for r in rows] == ["test-scheduler"] * 4
    assert rows[1].detail["quotas"] == ["teacher-month"]
    assert rows[2].detail["quotas"] == []
    assert rows[3].detail["defaults"] is True and rows[3].detail["term"] == "spring"


REFUSED: list[tuple[dict[str, Any], str, str]] = [
    ({"min": 0}, "min", "write a whole number ≥ 1"),
    ({"kind": "lecture"}, "kind", "is not a lesson kind"),
    ({"period": "fortnight"}, "period", "write one of week, month, semester, year"),
    ({"scope": "county"}, "scope", "write one of school, pairing"),
    ({"id": "teacher-month"}, "id", "repeats an earlier quota"),
    ({"label_zh": ""}, "label_zh", "is required"),
    ({"measure": "subjects"}, "each", "field 'each' is required"),
    ({"colour": "red"}, "colour", "unknown field 'colour'"),
]


async def test_a_refused_quota_is_named_by_place_and_field(
    served: tuple[str, sessionmaker[Session]],
) -> None:
    base, db = served
    url = f"{base}/terms/spring/quotas"
    async with loopback_session(headers=bearer_headers(db)) as http:
        for second, field, says in REFUSED:
            bad = {**MONTHLY, "id": "other", **second}
            async with http.put(url, json={"quotas": [MONTHLY, bad]}) as r:
                doc = await r.json()
            assert r.status == 400
            assert (doc["index"], doc["field"]) == (2, field), doc
            assert doc["error"].startswith("quotas quota #2") and says in doc["error"], doc
        async with http.get(url) as r:
            assert (await r.json())["source"] == "defaults"  # nothing was written


MALFORMED = [
    (b"{", "not JSON"),
    (b"[]", 'send {"quotas"'),
    (b'{"quotas": [], "defaults": true}', 'send {"quotas"'),
    (b'{"defaults": false}', '"defaults" must be true'),
    (b'{"quotas": {}}', "must be an array"),
    (b'{"quotas": [1]}', "a quota is a table"),
]


async def test_a_malformed_body_is_400_with_what_to_send(
    served: tuple[str, sessionmaker[Session]],
) -> None:
    base, db = served
    async with loopback_session(headers=bearer_headers(db)) as http:
        for body, says in MALFORMED:
            async with http.put(f"{base}/terms/spring/quotas", data=body) as r:
                assert r.status == 400 and says in (await r.json())["error"], body


async def test_who_may_and_the_refusals(served: tuple[str, sessionmaker[Session]]) -> None:
    base, db = served
    url = f"{base}/terms/spring/quotas"
    async with loopback_session() as http, http.get(url) as r:
        assert r.status == 401
    for role, get, put in (
        ("inspector", 200, 403),
        ("technician", 200, 403),
        ("teacher", 403, 403),
    ):
        async with loopback_session(headers=bearer_headers(db, role)) as http:
            async with http.get(url) as r:
                assert r.status == get, role
            async with http.put(url, json={"quotas": []}) as r:
                assert r.status == put, role
    headers = bearer_headers(db, "scheduler")
    with db() as s:
        set_school(s, "test-scheduler", "village")
    async with (
        loopback_session(headers=headers) as http,
        http.put(url, json={"quotas": []}) as r,
    ):
        assert r.status == 403 and "county account" in (await r.json())["error"]
    async with loopback_session(headers=bearer_headers(db)) as http:
        async with http.get(f"{base}/terms/autumn/quotas") as r:
            assert r.status == 404 and "term 'autumn' does not exist" in (await r.json())["error"]
        async with http.put(f"{base}/terms/autumn/quotas", json={"quotas": []}) as r:
            assert r.status == 404
        big = b'{"quotas": [' + b" " * MAX_BODY_BYTES + b"]}"
        async with http.put(url, data=big) as r:
            assert r.status == 413
        async with http.get(url) as r:
            assert (await r.json())["source"] == "defaults"
