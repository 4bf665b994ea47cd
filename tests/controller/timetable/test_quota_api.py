"""The quota reports' API route and CLI: JSON by each view, CSV with a BOM and Chinese
headers, the refusals (no credential, a teacher's role, a bad query) and the size limit."""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator
from datetime import date

import pytest
from helpers import bearer_headers, loopback_server_tls, loopback_session
from quota_seed import lesson
from sqlalchemy.orm import Session, sessionmaker
from timetable_fixtures import ROOMS, SETUP
from typer.testing import CliRunner

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.cli import app
from controller.app.http_api import HttpApi
from controller.db.session import make_engine, migrate, sessions
from controller.recordings.uploads import UploadService
from controller.storage.local import LocalStorage
from controller.timetable.setup import apply_setup

BOM = b"\xef\xbb\xbf"


@pytest.fixture
async def served(
    tmp_path: pathlib.Path,
    db_url: str,
) -> AsyncIterator[tuple[str, sessionmaker[Session]]]:
    url = db_url
    migrate(url)
    db: sessionmaker[Session] = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with db() as s:
        for cid, school in ROOMS.items():
            add_classroom(s, cid, cid, school, keys.public)
        apply_setup(s, SETUP)
        lesson(s, date(2026, 3, 4))
        lesson(s, date(2026, 3, 5), "research", teacher="t-li")
    uploads = UploadService(db, LocalStorage(tmp_path / "storage"), lambda a, b: None)
    http = HttpApi(db, uploads, keys, lambda: [])
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    try:
        yield f"https://127.0.0.1:{http.port}/api/v1/reports/quotas", db
    finally:
        await http.stop()


async def test_every_view_as_json_and_csv(served: tuple[str, sessionmaker[Session]]) -> None:
    url, db = served
    async with loopback_session(headers=bearer_headers(db, "inspector")) as http:
        async with http.get(url, params={"term": "spring"}) as r:
            assert r.status == 200, await r.text()
            doc = await r.json()
        assert doc["by"] == "school" and "ranked together" in doc["ranking"]
        assert [(e["key"], e["rank"]) for e in doc["entries"]] == [("city", 1), ("village", 2)]
        figures = {x["quota"]: x for x in doc["entries"][0]["results"]}
        assert figures["cross-school-sync"]["label_zh"] == "跨校同步课堂"
        assert (figures["cross-school-sync"]["held"], figures["cross-school-sync"]["met"]) == (
            1,
            False,
        )
        for by, key in (("teacher", "t-li"), ("subject", "music"), ("pairing", "p1")):
            async with http.get(url, params={"term": "spring", "by": by}) as r:
                doc = await r.json()
                assert r.status == 200 and key in [e["key"] for e in doc["entries"]], (by, doc)
        async with http.get(url, params={"term": "spring", "by": "pairing"}) as r:
            [p1] = (await r.json())["entries"]
            sync = next(x for x in p1["results"] if x["quota"] == "sync-total")
            assert (sync["held"], sync["required"], sync["label_en"]) == (
                1,
                30,
                "synchronous lessons held",
            )
        async with http.get(url, params={"term": "spring", "format": "csv"}) as r:
            raw = await r.read()
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
            assert raw.startswith(BOM + "学校 school,名称 name".encode()), raw[:40]
            assert 'filename="quotas-spring-school.csv"' in r.headers["Content-Disposition"]
        async with http.get(url, params={"term": "spring", "limit": "1"}) as r:
            doc = await r.json()
            assert doc["truncated"] is True and len(doc["entries"]) == 1


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ({}, 400, "query term"),
        ({"term": "x" * 65}, 400, "query term"),
        ({"term": "spring", "by": "county"}, 400, "use one of school, teacher"),
        ({"term": "spring", "format": "xlsx"}, 400, "use json or csv"),
        ({"term": "spring", "limit": "0"}, 400, "from 1 to 2000"),
        ({"term": "spring", "limit": "99999"}, 400, "from 1 to 2000"),
        ({"term": "autumn"}, 404, "term 'autumn' does not exist"),
    ],
)
async def test_a_bad_query_is_refused_with_the_reason(
    served: tuple[str, sessionmaker[Session]], query: dict[str, str], status: int, error: str
) -> None:
    url, db = served
    async with (
        loopback_session(headers=bearer_headers(db)) as http,
        http.get(url, params=query) as r,
    ):
        assert r.status == status and error in (await r.json())["error"]


async def test_no_credential_is_401_and_a_teacher_is_403(
    served: tuple[str, sessionmaker[Session]],
) -> None:
    url, db = served
    async with loopback_session() as http, http.get(url, params={"term": "spring"}) as r:
        assert r.status == 401
    teacher = bearer_headers(db, "teacher")
    async with (
        loopback_session(headers=teacher) as http,
        http.get(url, params={"term": "spring"}) as r,
    ):
        assert r.status == 403


def test_the_cli_writes_a_csv_excel_opens_and_ranks_schools(
    tmp_path: pathlib.Path, db_url: str
) -> None:
    runner = CliRunner()
    env = {
        "CLASSBRIDGE_CONTROLLER_STATE": str(tmp_path / "cli"),
        "CLASSBRIDGE_DATABASE_URL": db_url,
    }
    setup = tmp_path / "s.toml"
    setup.write_text(SETUP, encoding="utf-8")
    assert runner.invoke(app, ["timetable", "setup", str(setup)], env=env).exit_code == 0
    for cid, school in ROOMS.items():
        runner.invoke(app, ["classroom", "add", cid, "--school", school], env=env)
    out = tmp_path / "q.csv"
    base = ["timetable", "quotas", "--term", "spring"]
    done = runner.invoke(app, [*base, "--format", "csv", "-o", str(out)], env=env)
    assert done.exit_code == 0, done.output
    assert out.read_bytes().startswith(BOM + "学校 school".encode())
    done = runner.invoke(app, [*base, "--by", "pairing"], env=env)
    assert "NO  同步课堂总数 (synchronous lessons held) p1 spring: 0 of 30" in done.output
    done = runner.invoke(app, [*base, "--format", "json"], env=env)
    assert [e["rank"] for e in json.loads(done.output)] == [1, 2]
    done = runner.invoke(app, [*base, "--by", "county"], env=env)
    assert done.exit_code != 0 and "use one of school" in done.output
    done = runner.invoke(app, ["timetable", "quotas", "--term", "autumn"], env=env)
    assert done.exit_code != 0 and "term 'autumn' does not exist" in done.output
