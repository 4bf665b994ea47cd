"""A file's parts in flight at once, through the controller to a real S3 server (moto):
answers out of order, a part failing while others succeed, a kill between parts, the
bound on parts in flight and the shared bandwidth limit."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.parse
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import boto3
import pytest
from benchlib.s3_server import S3Server, s3_server
from helpers import loopback_client_tls, loopback_server_tls, loopback_session, loopback_tls

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.http_api import HttpApi
from controller.db.session import make_engine, migrate, sessions
from controller.lessons.scheduling import schedule_lesson
from controller.recordings import upload_tokens
from controller.recordings.uploads import UploadService
from controller.storage.s3 import S3Location, S3Storage
from edge_agent.errors import UploadFailed
from edge_agent.uploads.client import UploadApi
from edge_agent.uploads.journal import UploadJournal
from edge_agent.uploads.worker import Uploader
from protocols.uploads import crc32_text, part_crc32

PART = 5 * 1024 * 1024  # S3's smallest part
BUCKET = "classbridge-parts"
REL = "teacher/teacher-00001.mp4"


@dataclass(frozen=True)
class Site:
    """A controller on loopback storing into moto, and one file waiting in a journal."""

    base: str
    token: str
    lesson_id: str
    s3: S3Server
    src: pathlib.Path
    sha256: str
    journal_path: pathlib.Path


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


async def _site(tmp_path: pathlib.Path, s3: S3Server, parts: int) -> AsyncIterator[Site]:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    db = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    with db() as s:
        for cid in ("a", "b"):
            add_classroom(s, cid, cid, "", keys.public)
        lesson = schedule_lesson(s, "a", ["b"], t0, t0 + timedelta(minutes=1))
        token = upload_tokens.issue(s, "a")
    prefix = tmp_path.name  # one module-wide server: every test its own prefix
    storage = S3Storage(
        S3Location.parse(f"s3://{BUCKET}/{prefix}?endpoint={s3.endpoint}"), part_size=PART
    )
    storage.ensure_bucket()
    http = HttpApi(db, UploadService(db, storage, lambda lesson, room: None), keys, lambda: [])
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    src = tmp_path / "agent" / "rec" / "teacher-00001.mp4"
    src.parent.mkdir(parents=True)
    data = os.urandom(parts * PART - 1000)  # the last part a little short
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    journal_path = tmp_path / "agent" / "uploads.sqlite3"
    journal = UploadJournal(journal_path)
    journal.enqueue(lesson.id, REL, src, len(data), sha)
    journal.close()
    try:
        yield Site(f"https://127.0.0.1:{http.port}", token, lesson.id, s3, src, sha, journal_path)
    finally:
        await http.stop()


@pytest.fixture
async def six(tmp_path: pathlib.Path, s3: S3Server) -> AsyncIterator[Site]:
    async for site in _site(tmp_path, s3, parts=6):
        yield site


def _stored_sha256(site: Site) -> str:
    client = boto3.client("s3", endpoint_url=site.s3.endpoint, region_name="us-east-1")
    key = f"{site.journal_path.parent.parent.name}/lessons/{site.lesson_id}/a/{REL}"
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return hashlib.sha256(body).hexdigest()


class WatchedApi(UploadApi):
    """The real client, noting each part PUT to storage; ``hold`` parts answer late and
    ``fail`` parts fail once, after the bytes went (storage has them, we never learn)."""

    def __init__(self, http: aiohttp.ClientSession, site: Site, **parts: set[int]) -> None:
        super().__init__(http, site.base, "a", site.token, loopback_client_tls())
        self.hold, self.fail = parts.get("hold", set()), parts.get("fail", set())
        self.started: list[int] = []
        self.crc32: dict[int, str | None] = {}  # the CRC32 each part was sent with
        self.started_when_failed = 0
        self.answered: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.others_answered = asyncio.Event()

    async def put_part(
        self,
        url: str,
        auth: bool,
        body: bytes | AsyncIterator[bytes],
        size: int,
        crc32: str | None = None,
    ) -> str:
        n = int(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["partNumber"][0])
        self.started.append(n)
        self.crc32[n] = crc32
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            etag = await super().put_part(url, auth, body, size, crc32)
            if n in self.hold:
                await asyncio.wait_for(self.others_answered.wait(), 30)
            if n in self.fail:
                self.fail.discard(n)
                self.started_when_failed = len(self.started)
                raise UploadFailed(f"PUT part {n}: connection reset after the body was sent")
            self.answered.append(n)
            return etag
        finally:
            self.in_flight -= 1


async def _upload(site: Site, journal: UploadJournal, uploader: Uploader, api: WatchedApi) -> None:
    task = asyncio.create_task(uploader.upload(api, journal.pending()[0]))
    if api.hold:
        # Answer the held parts once every other part is answered.
        others = 6 - len(api.hold)
        while len(api.answered) < others and not task.done():
            await asyncio.sleep(0.02)
        api.others_answered.set()
    await task


async def test_parts_answered_out_of_order_are_each_journalled_and_the_file_verifies(
    six: Site,
) -> None:
    journal = UploadJournal(six.journal_path)
    uploader = Uploader(journal, "a", lambda: None, part_concurrency=3)
    async with loopback_session() as http:
        api = WatchedApi(http, six, hold={1})
        await _upload(six, journal, uploader, api)
    assert api.answered[-1] == 1 and api.answered != sorted(api.answered)  # 1 came last
    assert sorted(api.started) == [1, 2, 3, 4, 5, 6]  # every part once
    assert 2 <= api.most_in_flight <= 3  # concurrent, and bounded
    assert journal.summary()["verified"]["files"] == 1  # type: ignore[index]
    assert _stored_sha256(six) == six.sha256
    journal.close()


async def test_one_part_fails_while_others_succeed_and_the_resume_sends_only_the_rest(
    six: Site,
) -> None:
    journal = UploadJournal(six.journal_path)
    first = Uploader(journal, "a", lambda: None, part_concurrency=3)
    async with loopback_session() as http:
        failing = WatchedApi(http, six, fail={2})
        with pytest.raises(UploadFailed, match="part 2: connection reset"):
            await _upload(six, journal, first, failing)
    item = journal.pending()[0]
    acked = journal.parts(item.id)
    assert sorted(acked) == sorted(failing.answered)  # journalled exactly what was answered
    assert 2 not in acked and {1, 3} <= set(acked)  # the parts beside 2 finished and count
    assert len(failing.started) == failing.started_when_failed  # none started after it
    journal.close()

    journal = UploadJournal(six.journal_path)  # the agent restarts
    second = Uploader(journal, "a", lambda: None, part_concurrency=3)
    async with loopback_session() as http:
        api = WatchedApi(http, six)
        await _upload(six, journal, second, api)
    assert sorted(api.started) == sorted(set(range(1, 7)) - set(acked))
    assert second.parts_sent == 6 - len(acked)
    assert journal.summary()["verified"]["files"] == 1  # type: ignore[index]
    assert _stored_sha256(six) == six.sha256
    journal.close()


# The agent's uploader alone in its own process, slowed by its bandwidth limit, so the
# test can kill -9 it between parts.
AGENT = textwrap.dedent(
    """
    import asyncio, pathlib, ssl, sys
    from edge_agent.uploads.journal import UploadJournal
    from edge_agent.uploads.worker import Uploader
    from protocols.tls import pinned_client_context

    journal_path, base, token, trust, rate = sys.argv[1:6]
    async def main():
        journal = UploadJournal(pathlib.Path(journal_path))
        uploader = Uploader(
            journal, "a", lambda: (base, token), lambda: float(rate),
            controller_tls=pinned_client_context(pathlib.Path(trust).read_text()),
            part_concurrency=2,
        )
        await uploader.start()
        await asyncio.sleep(120)
    asyncio.run(main())
    """
)


async def test_a_kill_between_parts_resumes_without_sending_acknowledged_parts(
    six: Site, tmp_path: pathlib.Path
) -> None:
    trust = tmp_path / "trust.pem"
    trust.write_text(loopback_tls().trust_pem)
    rate = 8 * 1024 * 1024  # bytes/s: two 5 MiB parts at once, about 1.3 s a pair
    root = pathlib.Path(__file__).resolve().parents[3]
    agent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            AGENT,
            str(six.journal_path),
            six.base,
            six.token,
            str(trust),
            str(rate),
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    journal = UploadJournal(six.journal_path)
    item_id = journal.pending()[0].id
    try:
        deadline = time.monotonic() + 60
        while len(journal.parts(item_id)) < 2:
            assert agent.poll() is None, "the agent process died"
            assert time.monotonic() < deadline, "no part was acknowledged in 60 s"
            await asyncio.sleep(0.02)
        agent.send_signal(signal.SIGKILL)
    finally:
        agent.kill()
        agent.wait(10)
    acked = journal.parts(item_id)
    assert 2 <= len(acked) < 6, acked  # killed mid-file
    journal.close()

    journal = UploadJournal(six.journal_path)
    resumed = Uploader(journal, "a", lambda: None, part_concurrency=3)
    async with loopback_session() as http:
        api = WatchedApi(http, six)
        await _upload(six, journal, resumed, api)
    assert not set(api.started) & set(acked)  # nothing acknowledged went again
    assert sorted(api.started) == sorted(set(range(1, 7)) - set(acked))
    assert journal.summary()["verified"]["files"] == 1  # type: ignore[index]
    assert _stored_sha256(six) == six.sha256
    journal.close()


async def test_the_bandwidth_limit_holds_for_all_parts_in_flight_together(six: Site) -> None:
    rate = 20 * 1024 * 1024  # bytes/s, over four parts in flight
    journal = UploadJournal(six.journal_path)
    uploader = Uploader(journal, "a", lambda: None, lambda: float(rate), part_concurrency=4)
    start = time.monotonic()
    async with loopback_session() as http:
        api = WatchedApi(http, six)
        await _upload(six, journal, uploader, api)
    took = time.monotonic() - start
    size = six.src.stat().st_size
    assert api.most_in_flight == 4
    assert took >= size / rate - 0.25 - 0.1  # the bucket's burst is a quarter second
    assert journal.summary()["verified"]["files"] == 1  # type: ignore[index]
    journal.close()


@pytest.mark.parametrize("n", [0, 17])
def test_parts_in_flight_out_of_bounds_are_refused(tmp_path: pathlib.Path, n: int) -> None:
    journal = UploadJournal(tmp_path / "uploads.sqlite3")
    with pytest.raises(ValueError, match=f"parts in flight per file must be 1 to 16, not {n}"):
        Uploader(journal, "a", lambda: None, part_concurrency=n)
    journal.close()


def _key(site: Site, rel: str = REL) -> str:
    return f"{site.journal_path.parent.parent.name}/lessons/{site.lesson_id}/a/{rel}"


def _stored_crc32(site: Site, rel: str = REL) -> str | None:
    """The checksum S3 keeps for the object (None: the upload was opened without one)."""
    client = boto3.client("s3", endpoint_url=site.s3.endpoint, region_name="us-east-1")
    head = client.head_object(Bucket=BUCKET, Key=_key(site, rel), ChecksumMode="ENABLED")
    value = head.get("ChecksumCRC32")
    return None if value is None else str(value)


def _part_crc32s(site: Site) -> dict[int, str]:
    data = site.src.read_bytes()
    return {n: part_crc32(data[(n - 1) * PART : n * PART]) for n in range(1, 7)}


async def test_each_part_goes_with_its_crc32_and_storage_keeps_the_combined_checksum(
    six: Site,
) -> None:
    journal = UploadJournal(six.journal_path)
    uploader = Uploader(journal, "a", lambda: None, part_concurrency=3)
    async with loopback_session() as http:
        api = WatchedApi(http, six)
        await _upload(six, journal, uploader, api)
    crcs = _part_crc32s(six)
    assert api.crc32 == crcs  # every part sent with the CRC32 of its own bytes
    assert journal.summary()["verified"]["files"] == 1  # type: ignore[index]
    assert _stored_sha256(six) == six.sha256
    # S3 opened the upload with CRC32 and combined the parts' checksums (COMPOSITE).
    raw = b"".join(base64.b64decode(crcs[n]) for n in range(1, 7))
    assert (_stored_crc32(six) or "").removesuffix("-6") == crc32_text(zlib.crc32(raw))
    journal.close()


async def _old_agent_opens_and_sends(site: Site, numbers: list[int]) -> tuple[str, int, dict]:
    """What an agent of the previous version does: open without naming a checksum, ask
    for part URLs without CRC32s, PUT the parts without one."""
    headers = {"Authorization": f"Bearer {site.token}", "X-Classroom": "a"}
    data = site.src.read_bytes()
    body = {"lesson_id": site.lesson_id, "rel": REL, "size": len(data), "sha256": site.sha256}
    etags: dict[int, str] = {}
    async with loopback_session(headers=headers) as http:
        async with http.post(f"{site.base}/api/v1/uploads", json=body) as r:
            assert r.status == 201, await r.text()
            doc = await r.json()
        upload, part_size = str(doc["upload_id"]), int(doc["part_size"])
        urls = f"{site.base}/api/v1/uploads/{upload}/urls"
        async with http.post(urls, json={"parts": numbers}) as r:
            targets = (await r.json())["parts"]
        for target in targets:
            assert "crc32" not in target  # nothing to send with it
            n = target["n"]
            part = data[(n - 1) * part_size : n * part_size]
            async with aiohttp.ClientSession() as plain, plain.put(target["url"], data=part) as r:
                assert r.status == 200, await r.text()
                etags[n] = r.headers["ETag"]
    return upload, part_size, etags


async def test_a_journal_from_before_part_checksums_resumes_and_completes_without_them(
    six: Site,
) -> None:
    # The previous version's agent opened the upload and sent parts 1 and 2, journalling
    # them in its own schema (no crc32 column); then it was upgraded.
    upload, part_size, etags = await _old_agent_opens_and_sends(six, [1, 2])
    with sqlite3.connect(six.journal_path) as old:
        old.execute("ALTER TABLE part DROP COLUMN crc32")
        (item_id,) = old.execute("SELECT id FROM upload").fetchone()
        old.execute(
            "UPDATE upload SET session_id=?, part_size=? WHERE id=?", (upload, part_size, item_id)
        )
        for n, etag in etags.items():
            old.execute(
                "INSERT INTO part (upload_id, n, etag, size) VALUES (?, ?, ?, ?)",
                (item_id, n, etag, part_size),
            )
    old.close()

    journal = UploadJournal(six.journal_path)  # the new build opens the old journal
    assert {n: p.crc32 for n, p in journal.parts(item_id).items()} == {1: None, 2: None}
    uploader = Uploader(journal, "a", lambda: None, part_concurrency=3)
    async with loopback_session() as http:
        api = WatchedApi(http, six)
        await _upload(six, journal, uploader, api)
    # The upload was opened without checksums: the rest go without one, as before.
    assert api.crc32 == {3: None, 4: None, 5: None, 6: None}
    assert journal.summary()["verified"]["files"] == 1  # type: ignore[index]
    assert _stored_sha256(six) == six.sha256
    assert _stored_crc32(six) is None
    journal.close()


async def test_an_old_agent_completes_without_checksums_and_a_downgraded_one_starts_over(
    six: Site,
) -> None:
    headers = {"Authorization": f"Bearer {six.token}", "X-Classroom": "a"}
    upload, _, etags = await _old_agent_opens_and_sends(six, list(range(1, 7)))
    done = {"parts": [{"n": n, "etag": e} for n, e in sorted(etags.items())]}
    async with loopback_session(headers=headers) as http:
        complete = f"{six.base}/api/v1/uploads/{upload}/complete"
        async with http.post(complete, json=done) as r:
            assert r.status == 201, await r.text()
            assert (await r.json())["sha256"] == six.sha256

        # An upload a new agent opened with CRC32s, resumed by an older build that sends
        # none: S3 could not take the parts, so the upload is dropped and opened afresh.
        rel = "teacher/teacher-00002.mp4"
        size = six.src.stat().st_size
        body = {"lesson_id": six.lesson_id, "rel": rel, "size": size, "sha256": six.sha256}
        async with http.post(f"{six.base}/api/v1/uploads", json={**body, "checksum": "crc32"}) as r:
            first = (await r.json())["upload_id"]
        async with http.post(f"{six.base}/api/v1/uploads/{first}/urls", json={"parts": [1]}) as r:
            error = (await r.json())["error"]
            assert r.status == 404, error
            assert "opened with CRC32 checksums and the part has none" in error
            assert error.endswith("open it again")
        async with http.post(f"{six.base}/api/v1/uploads", json=body) as r:
            assert r.status == 201 and (await r.json())["upload_id"] != first
