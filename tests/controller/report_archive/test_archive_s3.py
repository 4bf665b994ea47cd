"""The report archive on S3 storage (a real S3-compatible server, moto): a report is
written there, listed from the bucket, and a download is a redirect to a signed URL that
serves the stored bytes."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from datetime import date

import pytest
import requests
from benchlib.s3_server import S3Server, s3_server
from helpers import bearer_headers, loopback_server_tls, loopback_session
from quota_seed import lesson
from timetable_fixtures import ROOMS, SETUP

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.http_api import HttpApi
from controller.db.session import make_engine, migrate, sessions
from controller.recordings.uploads import UploadService
from controller.storage.s3 import S3Location, S3Storage
from controller.timetable.setup import apply_setup


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    with s3_server() as running:
        yield running


async def test_written_listed_and_served_from_s3(
    tmp_path: pathlib.Path, db_url: str, server: S3Server
) -> None:
    migrate(db_url)
    db = sessions(make_engine(db_url))
    keys = ServerKeys.load_or_create(tmp_path)
    with db() as s:
        for cid, school in ROOMS.items():
            add_classroom(s, cid, cid, school, keys.public)
        apply_setup(s, SETUP)
        lesson(s, date(2026, 3, 4))
    bucket = f"cb-reports-{'pg' if db_url.startswith('postgresql') else 'lite'}"
    storage = S3Storage(S3Location.parse(f"s3://{bucket}/county?endpoint={server.endpoint}"))
    storage.ensure_bucket()
    http = HttpApi(db, UploadService(db, storage, lambda a, b: None), keys, lambda: [])
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    base = f"https://127.0.0.1:{http.port}"
    try:
        async with loopback_session(headers=bearer_headers(db)) as client:
            async with client.post(
                f"{base}/api/v1/reports/archive", json={"term": "spring", "period": "term"}
            ) as r:
                assert r.status == 201, await r.text()
            async with client.get(f"{base}/api/v1/reports/archive") as r:
                [report] = (await r.json())["reports"]
            assert (report["term"], report["period"], report["complete"]) == (
                "spring",
                "term",
                True,
            )
            url = next(f["url"] for f in report["files"] if f["name"] == "pairing.csv")
            async with client.get(base + url, allow_redirects=False) as r:
                assert r.status == 302
                signed = r.headers["Location"]
            missing = f"{base}/api/v1/reports/archive/spring/2026-03/pairing.csv"
            async with client.get(missing, allow_redirects=False) as r:
                assert r.status == 404
    finally:
        await http.stop()
    got = requests.get(signed, timeout=10)
    assert got.status_code == 200
    assert got.content.startswith(b"\xef\xbb\xbf" + "结对 pairing".encode())
