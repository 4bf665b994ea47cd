"""The report archive's routes: write a report now, list, download the printable HTML
(charts inline, Chinese with English beside) and the CSVs (UTF-8 with a BOM, Chinese and
English headers); the refusals (no credential, roles, a school account, unknown term,
a month outside the term, a file that is not a report's, the size limit)."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from datetime import date

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
from controller.timetable.setup import apply_setup

BOM = b"\xef\xbb\xbf"


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
        lesson(s, date(2026, 3, 5), "research", subject="音乐", teacher="t-li")
        lesson(s, date(2026, 3, 6), held=False)
    uploads = UploadService(db, LocalStorage(tmp_path / "storage"), lambda a, b: None)
    http = HttpApi(db, uploads, keys, lambda: [])
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    try:
        yield f"https://127.0.0.1:{http.port}", db
    finally:
        await http.stop()


async def test_write_list_and_download_a_month_and_the_term(
    served: tuple[str, sessionmaker[Session]],
) -> None:
    base, db = served
    url = f"{base}/api/v1/reports/archive"
    async with loopback_session(headers=bearer_headers(db, "scheduler")) as http:
        async with http.get(url) as r:
            assert r.status == 200 and (await r.json()) == {"reports": []}
        for period in ("2026-03", "term"):
            async with http.post(url, json={"term": "spring", "period": period}) as r:
                doc = await r.json()
            assert r.status == 201, doc
            assert doc["complete"] and [f["name"] for f in doc["files"]] == [
                "pairing.csv",
                "report.html",
                "school.csv",
                "subject.csv",
                "teacher.csv",
            ]
        async with http.get(url) as r:
            listed = (await r.json())["reports"]
        assert [(x["term"], x["period"], x["kind"]) for x in listed] == [
            ("spring", "2026-03", "month"),
            ("spring", "term", "term"),
        ]
    async with loopback_session(headers=bearer_headers(db, "inspector")) as http:
        files = {f["name"]: base + f["url"] for f in listed[0]["files"]}
        async with http.get(files["report.html"]) as r:
            html = await r.text()
            assert r.status == 200 and r.headers["Content-Type"] == "text/html; charset=utf-8"
            assert "script-src" not in r.headers["Content-Security-Policy"]
            assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        assert "月度报表 monthly report 2026-03" in html
        assert "统计期间 period: 2026-03-02 – 2026-03-29" in html
        assert html.count("<svg") >= 2 and "按课型 by kind" in html
        assert '同步课堂 synchronous</td><td class="n">2</td><td class="n">1</td>' in html
        assert "按学校 by school" in html and "按教师 by teacher" in html
        assert "指标完成情况 quota figures" in html
        assert "<td>跨校同步课堂 (cross-school synchronous lessons)</td><td>city</td>" in html
        async with http.get(files["school.csv"]) as r:
            raw = await r.read()
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
            assert 'filename="report-spring-2026-03-school.csv"' in r.headers["Content-Disposition"]
        assert raw.startswith(BOM + "学校 school,名称 name,排名 rank".encode())
        async with http.get(files["teacher.csv"]) as r:
            text = (await r.read()).decode("utf-8-sig")
        assert "教师 teacher,名称 name,课型 kind,已排 scheduled,已开 held" in text
        assert "t-li,t-li,research,1,1,0" in text
        async with http.get(files["subject.csv"]) as r:
            assert "音乐" in (await r.read()).decode("utf-8-sig")
    with db() as s:
        rows = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "POST /api/v1/reports/archive")
        ).all()
    assert [(r.username, r.detail["period"]) for r in rows] == [
        ("test-scheduler", "2026-03"),
        ("test-scheduler", "term"),
    ]


async def test_the_refusals(served: tuple[str, sessionmaker[Session]]) -> None:
    base, db = served
    url = f"{base}/api/v1/reports/archive"
    one = f"{url}/spring/term/report.html"
    async with loopback_session() as http:
        for r in (await http.get(url), await http.get(one), await http.post(url, json={})):
            assert r.status == 401
    async with loopback_session(headers=bearer_headers(db, "teacher")) as http:
        assert (await http.get(url)).status == 403
        assert (await http.get(one)).status == 403
    async with loopback_session(headers=bearer_headers(db, "inspector")) as http:
        r = await http.post(url, json={"term": "spring", "period": "term"})
        assert r.status == 403
    school = bearer_headers(db, "scheduler")
    with db() as s:
        set_school(s, "test-scheduler", "village")
    async with loopback_session(headers=school) as http:
        for r in (
            await http.get(url),
            await http.get(one),
            await http.post(url, json={"term": "spring", "period": "term"}),
        ):
            assert r.status == 403 and "/api/v1/reports/quotas" in (await r.json())["error"]
    async with loopback_session(headers=bearer_headers(db)) as http:
        for body, status, says in (
            ({"term": "autumn", "period": "term"}, 404, "term 'autumn' does not exist"),
            ({"term": "spring", "period": "2026-05"}, 400, "has the months 2026-03 and 'term'"),
            ({"term": "spring", "period": "march"}, 400, "write YYYY-MM or term"),
            ({"term": "spring"}, 400, 'send {"term"'),
            ({"term": "spring", "period": 3}, 400, 'send {"term"'),
        ):
            async with http.post(url, json=body) as r:
                assert r.status == status and says in (await r.json())["error"], body
        async with http.post(url, data=b"{" + b" " * 2000 + b"}") as r:
            assert r.status == 413
        async with http.get(one) as r:
            assert r.status == 404 and "not in the archive" in (await r.json())["error"]
        for bad in ("spring/term/secret.txt", "spring/2026-3/report.html"):
            async with http.get(f"{url}/{bad}") as r:
                assert (
                    r.status == 400 and "GET /api/v1/reports/archive" in (await r.json())["error"]
                )
