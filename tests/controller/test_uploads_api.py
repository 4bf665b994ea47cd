"""The multipart upload API end to end with the agent's uploader: refusals, checksum
verification, resume after an interruption, and the same through a real S3 server."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aiohttp import web
from benchlib.s3_server import s3_server
from helpers import bearer_headers, loopback_client_tls, loopback_server_tls, loopback_session
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.http_api import HttpApi
from controller.db.models import Recording, StoredSegment, UploadSession
from controller.db.session import make_engine, migrate, sessions
from controller.lessons.scheduling import schedule_lesson
from controller.recordings import upload_tokens
from controller.recordings.uploads import MAX_MANIFEST_BYTES, UploadService
from controller.storage.backend import StorageBackend
from controller.storage.local import LocalStorage
from controller.storage.s3 import S3Location, S3Storage
from edge_agent.errors import UploadFailed
from edge_agent.uploads.client import UploadApi
from edge_agent.uploads.journal import UploadJournal
from edge_agent.uploads.worker import Uploader, backoff_delay
from protocols.lesson_ids import manual_lesson_id
from protocols.uploads import StoredPart

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
PART = 64 * 1024


@pytest.fixture
def db(tmp_path: pathlib.Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    factory = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with factory() as s:
        for cid in ("a", "b", "c"):  # c takes no part in the lesson
            add_classroom(s, cid, cid, "", keys.public)
    return factory


# The base URL, each classroom's upload token, the lesson id and the upload service.
Started = tuple[str, dict[str, str], str, UploadService]


async def _start(
    db: sessionmaker[Session], tmp_path: pathlib.Path, storage: StorageBackend
) -> tuple[HttpApi, Started]:
    keys = ServerKeys.load_or_create(tmp_path)
    with db() as s:
        lesson = schedule_lesson(s, "a", ["b"], T0, T0 + timedelta(minutes=1))
        tokens = {cid: upload_tokens.issue(s, cid) for cid in ("a", "b", "c")}
    uploads = UploadService(db, storage, lambda lesson, room: None)
    http = HttpApi(db, uploads, keys, lambda: [])
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    return http, (f"https://127.0.0.1:{http.port}", tokens, lesson.id, uploads)


@pytest.fixture
async def local_api(db: sessionmaker[Session], tmp_path: pathlib.Path) -> AsyncIterator[Started]:
    http, started = await _start(db, tmp_path, LocalStorage(tmp_path / "storage", PART))
    try:
        yield started
    finally:
        await http.stop()


def _headers(keys: dict[str, str], room: str, token_room: str | None = None) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {keys[token_room or room]}",
        "X-Classroom": room,
    }


async def test_refusals_name_the_problem(local_api: Started) -> None:
    base, keys, lesson_id, _ = local_api
    body = {
        "lesson_id": lesson_id,
        "rel": "teacher/teacher-00001.mp4",
        "size": 3,
        "sha256": "0" * 64,
    }
    url = f"{base}/api/v1/uploads"
    async with loopback_session() as http:
        async with http.post(url, json=body, headers=_headers(keys, "a", "b")) as r:
            assert r.status == 401  # b's token cannot write a's recordings
        async with http.post(url, json=body) as r:
            assert r.status == 401
        for change, fragment in [
            ({"size": -1}, "size must be"),
            ({"sha256": "xyz"}, "sha256 must be 64 hex"),
            ({"rel": "../passwd"}, "not a valid storage name"),
            ({"rel": "a/b/c"}, "must be 'manifest.json'"),
        ]:
            async with http.post(url, json={**body, **change}, headers=_headers(keys, "a")) as r:
                assert r.status == 400, change
                assert fragment in (await r.json())["error"]
        no_field = {k: v for k, v in body.items() if k != "size"}
        async with http.post(url, json=no_field, headers=_headers(keys, "a")) as r:
            assert r.status == 400 and "'size' is required" in (await r.json())["error"]
        async with http.post(url, data=b"{]", headers=_headers(keys, "a")) as r:
            assert r.status == 400 and "not JSON" in (await r.json())["error"]
        async with http.post(
            url, json={**body, "lesson_id": "nope"}, headers=_headers(keys, "a")
        ) as r:
            assert r.status == 404
        async with http.post(
            f"{base}/api/v1/uploads/unknown/complete",
            json={"parts": []},
            headers=_headers(keys, "a"),
        ) as r:
            assert r.status == 404 and "open it again" in (await r.json())["error"]


async def test_a_classroom_uploads_only_into_its_own_lessons(local_api: Started) -> None:
    base, keys, lesson_id, _ = local_api
    url = f"{base}/api/v1/uploads"
    body = {"lesson_id": lesson_id, "rel": "t/t-00001.mp4", "size": 3, "sha256": "0" * 64}
    manual = {**body, "lesson_id": manual_lesson_id(T0.timestamp())}
    async with loopback_session() as http:
        async with http.post(url, json=body, headers=_headers(keys, "c")) as r:
            error = (await r.json())["error"]
            assert r.status == 403, error
            assert f"classroom 'c' takes no part in lesson {lesson_id!r}" in error
            assert "lead 'a', receiving 'b'" in error
        for room in ("a", "b"):
            async with http.post(url, json=body, headers=_headers(keys, room)) as r:
                assert r.status == 201, await r.text()
        # A manual recording is the classroom's own: it may make one, no one else may add.
        async with http.post(url, json=manual, headers=_headers(keys, "c")) as r:
            assert r.status == 201, await r.text()
        async with http.post(url, json=manual, headers=_headers(keys, "a")) as r:
            error = (await r.json())["error"]
            assert r.status == 403 and "recorded by hand in classroom 'c'" in error, error


async def test_part_numbers_and_sizes_are_checked(local_api: Started) -> None:
    base, keys, lesson_id, _ = local_api
    size = 3 * PART - 10
    body = {"lesson_id": lesson_id, "rel": "t/t-00001.mp4", "size": size, "sha256": "0" * 64}
    headers = _headers(keys, "a")
    async with loopback_session(headers=headers) as http:
        async with http.post(f"{base}/api/v1/uploads", json=body) as r:
            upload = (await r.json())["upload_id"]
        parts = f"{base}/api/v1/uploads/{upload}/parts"
        for n in ("-5", "0", "4", "99999"):
            async with http.put(f"{parts}/{n}", data=b"x") as r:
                error = (await r.json())["error"]
                assert r.status == 400 and f"part {n} is out of range 1..3" in error, error
        for n, length in ((1, PART + 1), (3, PART - 9)):
            async with http.put(f"{parts}/{n}", data=b"x" * length) as r:
                error = (await r.json())["error"]
                assert r.status == 413, error
                assert f"at most {PART if n == 1 else PART - 10} bytes" in error
        async with http.put(f"{parts}/1", data=b"x" * 10) as r:
            error = (await r.json())["error"]
            assert r.status == 400 and f"part 1 must be {PART} bytes; got 10" in error, error

        async def trickle() -> AsyncIterator[bytes]:  # chunked: no Content-Length
            for _ in range(4):
                yield b"x" * (PART // 2)

        async with http.put(f"{parts}/2", data=trickle()) as r:
            assert r.status == 413, await r.text()
        async with http.post(
            f"{base}/api/v1/uploads/{upload}/urls", json={"parts": [-5, 99999]}
        ) as r:
            error = (await r.json())["error"]
            assert r.status == 400 and "part -5 is out of range 1..3" in error, error
        huge = {**body, "rel": "manifest.json", "size": MAX_MANIFEST_BYTES + 1}
        async with http.post(f"{base}/api/v1/uploads", json=huge) as r:
            error = (await r.json())["error"]
            assert r.status == 400, error
            assert f"manifest.json is at most {MAX_MANIFEST_BYTES} bytes" in error


async def test_wrong_bytes_are_refused_and_dropped(
    local_api: Started, tmp_path: pathlib.Path
) -> None:
    base, keys, lesson_id, _ = local_api
    good = b"the real segment"
    async with loopback_session() as http:
        api = UploadApi(http, base, "a", keys["a"], loopback_client_tls())
        doc = await api.open(
            lesson_id, "teacher/t-00001.mp4", len(good), hashlib.sha256(good).hexdigest()
        )
        target = (await api.targets(doc["upload_id"], [1]))[0]
        bad = b"the fake segment"  # same length, different bytes
        etag = await api.put_part(target["url"], target["auth"], bad, len(bad))
        with pytest.raises(Exception, match="hashing to"):
            await api.complete(doc["upload_id"], [StoredPart(1, etag)])
    stored = tmp_path / "storage" / "lessons" / lesson_id / "a" / "teacher" / "t-00001.mp4"
    assert not stored.exists()


async def _make_file(path: pathlib.Path, size: int) -> str:
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


async def test_interrupted_upload_resumes_where_it_stopped(
    local_api: Started, tmp_path: pathlib.Path
) -> None:
    """Ten parts; the tenth fails once. After a restart only the tenth is sent again."""
    base, keys, lesson_id, uploads = local_api
    src = tmp_path / "agent" / "teacher-00001.mp4"
    size = 10 * PART - 100
    sha = await _make_file(src, size)
    journal_path = tmp_path / "agent" / "uploads.sqlite3"
    journal = UploadJournal(journal_path)
    journal.enqueue(lesson_id, "teacher/teacher-00001.mp4", src, size, sha)

    storage = uploads.storage
    assert isinstance(storage, LocalStorage)
    real_put = storage.put_part
    calls: list[int] = []

    async def flaky(backend_id: str, number: int, chunks: AsyncIterator[bytes]) -> tuple[str, int]:
        calls.append(number)
        if number == 10 and calls.count(10) == 1:
            raise OSError("disk hiccup on part 10")
        return await real_put(backend_id, number, chunks)

    storage.put_part = flaky  # type: ignore[method-assign]
    creds = (base, keys["a"])
    first = Uploader(journal, "a", lambda: creds, controller_tls=loopback_client_tls())
    async with loopback_session() as http:
        api = UploadApi(http, base, "a", creds[1], loopback_client_tls())
        item = journal.pending()[0]
        with pytest.raises(UploadFailed, match=r"HTTP 503.*disk hiccup on part 10"):
            await first.upload(api, item)
    assert sorted(journal.parts(item.id)) == list(range(1, 10))  # 90 % acknowledged
    journal.close()

    # The agent restarts: a new journal handle on the same file, a new uploader.
    journal = UploadJournal(journal_path)
    second = Uploader(journal, "a", lambda: creds, controller_tls=loopback_client_tls())
    async with loopback_session() as http:
        api = UploadApi(http, base, "a", creds[1], loopback_client_tls())
        await second.upload(api, journal.pending()[0])
    assert second.parts_sent == 1  # only the tenth part went again
    assert journal.summary()["verified"] == {"files": 1, "bytes": size}
    stored = tmp_path / "storage" / "lessons" / lesson_id / "a" / "teacher" / "teacher-00001.mp4"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
    journal.close()


async def test_a_retried_complete_records_a_segment_a_killed_controller_did_not(
    local_api: Started, tmp_path: pathlib.Path, db: sessionmaker[Session]
) -> None:
    """A controller killed after storing an upload but before recording its segment (two
    commits, before this was one): the agent's retried complete records it, so the
    lesson's manifest is not refused for ever with 'storage lacks 1 segment(s)'."""
    base, keys, lesson_id, _ = local_api
    src = tmp_path / "agent" / "teacher-00001.mp4"
    size = 3 * PART - 7
    sha = await _make_file(src, size)
    journal = UploadJournal(tmp_path / "agent" / "uploads.sqlite3")
    journal.enqueue(lesson_id, "teacher/teacher-00001.mp4", src, size, sha)
    creds = (base, keys["a"])
    uploader = Uploader(journal, "a", lambda: creds, controller_tls=loopback_client_tls())
    async with loopback_session() as http:
        api = UploadApi(http, base, "a", creds[1], loopback_client_tls())
        await uploader.upload(api, journal.pending()[0])
        with db() as s:
            upload_id = s.scalars(select(UploadSession.id)).one()
            s.execute(delete(StoredSegment))  # what the killed controller never wrote
            s.commit()
        # The agent never heard the answer: it completes the same upload again.
        result = await api.complete(upload_id, list(journal.parts(1).values()))
    assert result["sha256"] == sha
    with db() as s:
        rows = s.scalars(select(StoredSegment)).all()
        assert [(r.track, r.name, r.sha256, r.bytes) for r in rows] == [
            ("teacher", "teacher-00001.mp4", sha, size)
        ]
    journal.close()


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    import random

    rng = random.Random(1)
    delays = [backoff_delay(n, rng) for n in range(1, 12)]
    assert 0.5 <= delays[0] <= 1.0
    assert 4.0 <= delays[3] <= 8.0
    assert all(d <= 300 for d in delays) and delays[-1] >= 150
    assert len({round(backoff_delay(5, rng), 3) for _ in range(20)}) > 10  # jittered


async def test_uploader_loop_with_manifest_last_through_real_s3(
    db: sessionmaker[Session], tmp_path: pathlib.Path
) -> None:
    """Segments go straight to a real S3 server with presigned URLs; storage reads each
    back and confirms its SHA-256; the manifest goes last and is catalogued."""
    with s3_server() as server:
        location = S3Location.parse(f"s3://classbridge-rec/school?endpoint={server.endpoint}")
        storage = S3Storage(location, part_size=5 * 1024 * 1024)
        storage.ensure_bucket()
        http, (base, keys, lesson_id, _uploads) = await _start(db, tmp_path, storage)
        try:
            journal = UploadJournal(tmp_path / "agent" / "uploads.sqlite3")
            seg = tmp_path / "agent" / "rec" / "teacher" / "teacher-00001.mp4"
            size = 11 * 1024 * 1024  # three parts
            sha = await _make_file(seg, size)
            journal.enqueue(lesson_id, "teacher/teacher-00001.mp4", seg, size, sha)
            manifest = tmp_path / "agent" / "rec" / "manifest.json"
            doc = {
                "lesson_id": lesson_id,
                "classroom_id": "a",
                "started_at": 0,
                "ended_at": 60,
                "tracks": [],
            }
            manifest.write_text(json.dumps(doc))
            mdata = manifest.read_bytes()
            journal.enqueue(
                lesson_id, "manifest.json", manifest, len(mdata), hashlib.sha256(mdata).hexdigest()
            )
            creds = (base, keys["a"])
            uploader = Uploader(journal, "a", lambda: creds, controller_tls=loopback_client_tls())
            await uploader.start()
            try:
                await _until(lambda: _all_verified(journal), 30)
            finally:
                await uploader.stop()
            s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")
            body = s3.get_object(
                Bucket="classbridge-rec",
                Key=f"school/lessons/{lesson_id}/a/teacher/teacher-00001.mp4",
            )["Body"].read()
            assert hashlib.sha256(body).hexdigest() == sha
            catalogue = f"{base}/api/v1/lessons/{lesson_id}/recordings"
            async with (
                loopback_session(headers=bearer_headers(db)) as client,
                client.get(catalogue) as r,
            ):
                cat = await r.json()
            assert cat["classrooms"][0]["classroom"] == "a"
            journal.close()
        finally:
            await http.stop()


def _all_verified(journal: UploadJournal) -> bool:
    return not journal.pending() and "verified" in journal.summary()


async def _until(cond: Callable[[], bool], timeout: float) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


_unused: tuple[object, ...] = (web, Awaitable)


async def test_recordings_play_with_byte_ranges(
    local_api: Started, db: sessionmaker[Session], tmp_path: pathlib.Path
) -> None:
    """Playback needs a console credential; byte ranges work on a catalogued file."""
    base, _keys, lesson_id, _ = local_api
    path = tmp_path / "storage" / "lessons" / lesson_id / "a" / "teacher.mp4"
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(range(256)) * 8)
    with db() as s:
        s.add(
            Recording(
                lesson_id=lesson_id,
                classroom_id="a",
                track="teacher",
                kind="video",
                path=f"lessons/{lesson_id}/a/teacher.mp4",
                codec="h264",
                duration_s=1.0,
                segments=1,
                sha256="0" * 64,
                created_at=datetime.now(UTC),
            )
        )
        s.commit()
    url = f"{base}/api/v1/recordings/{lesson_id}/a/teacher.mp4"
    async with loopback_session(headers=bearer_headers(db)) as http:
        async with http.get(url, headers={"Range": "bytes=256-511"}) as r:
            assert r.status == 206 and r.headers["Content-Type"] == "video/mp4"
            assert await r.read() == bytes(range(256))
        async with http.get(f"{base}/api/v1/recordings/{lesson_id}/a/none.mp4") as r:
            assert r.status == 404 and "no such recording" in (await r.json())["error"]
        async with http.get(f"{base}/api/v1/recordings/{lesson_id}/a/..%2F..%2Fx") as r:
            assert r.status in (400, 404)


class Garbling(UploadApi):
    """The real client, with one bit of part 2 flipped on its way the first time it goes
    (after its CRC32 was computed from the file)."""

    garbled = 0

    async def put_part(
        self,
        url: str,
        auth: bool,
        body: bytes | AsyncIterator[bytes],
        size: int,
        crc32: str | None = None,
    ) -> str:
        if url.endswith("/parts/2") and not self.garbled:
            self.garbled += 1
            data = body if isinstance(body, bytes) else b"".join([c async for c in body])
            body = bytes([data[0] ^ 1]) + data[1:]
        return await super().put_part(url, auth, body, size, crc32)


async def test_a_part_that_does_not_match_its_crc32_is_refused_and_sent_again(
    local_api: Started, tmp_path: pathlib.Path
) -> None:
    base, keys, lesson_id, _ = local_api
    src = tmp_path / "agent" / "teacher-00001.mp4"
    size = 3 * PART - 10
    sha = await _make_file(src, size)
    journal = UploadJournal(tmp_path / "agent" / "uploads.sqlite3")
    journal.enqueue(lesson_id, "teacher/teacher-00001.mp4", src, size, sha)
    uploader = Uploader(journal, "a", lambda: None, part_concurrency=1)
    async with loopback_session() as http:
        api = Garbling(http, base, "a", keys["a"], loopback_client_tls())
        item = journal.pending()[0]
        with pytest.raises(
            UploadFailed,
            match=r"HTTP 400 \(sent with CRC32 .{8}\): .*part 2 of upload .*the CRC32 sent "
            r"\(.{8}\) does not match the bytes received \(.{8}\); the part was not stored",
        ):
            await uploader.upload(api, item)
        assert sorted(journal.parts(item.id)) == [1]  # part 2 is not counted as sent
        await uploader.upload(api, journal.pending()[0])  # the next attempt
    assert api.garbled == 1
    assert journal.summary()["verified"] == {"files": 1, "bytes": size}
    stored = tmp_path / "storage" / "lessons" / lesson_id / "a" / "teacher" / "teacher-00001.mp4"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
    journal.close()


async def test_a_malformed_crc32_is_refused_by_name(local_api: Started) -> None:
    base, keys, lesson_id, _ = local_api
    body = {"lesson_id": lesson_id, "rel": "t/t-00001.mp4", "size": 10, "sha256": "0" * 64}
    async with loopback_session(headers=_headers(keys, "a")) as http:
        async with http.post(f"{base}/api/v1/uploads", json={**body, "checksum": "md5"}) as r:
            assert r.status == 400 and "checksum must be 'crc32'" in (await r.json())["error"]
        async with http.post(f"{base}/api/v1/uploads", json={**body, "checksum": "crc32"}) as r:
            upload = (await r.json())["upload_id"]
        urls = f"{base}/api/v1/uploads/{upload}/urls"
        async with http.post(urls, json={"parts": [1], "crc32": {"1": "nope"}}) as r:
            error = (await r.json())["error"]
            assert r.status == 400 and "part 1: crc32 must be base64 of 4 bytes" in error
        async with http.post(urls, json={"parts": [1], "crc32": {"2": "AAAAAA=="}}) as r:
            error = (await r.json())["error"]
            assert r.status == 400 and "part 2 is not among the parts asked for" in error
        part = f"{base}/api/v1/uploads/{upload}/parts/1"
        async with http.put(part, data=b"x" * 10, headers={"x-amz-checksum-crc32": "zz"}) as r:
            error = (await r.json())["error"]
            assert r.status == 400 and "crc32 must be base64 of 4 bytes" in error
        complete = f"{base}/api/v1/uploads/{upload}/complete"
        async with http.post(complete, json={"parts": [{"n": 1, "etag": "e", "crc32": 5}]}) as r:
            error = (await r.json())["error"]
            assert r.status == 400 and "part 1: crc32 must be base64 of 4 bytes" in error
