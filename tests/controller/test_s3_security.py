"""S3 against a real S3-compatible server (moto): buckets the controller creates are
encrypted by default and closed to the public, presigned URLs are short-lived, and
retention leaves nothing of a cleared lesson, unfinished multipart uploads included."""

from __future__ import annotations

import pathlib
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from benchlib.s3_server import S3Server, s3_server
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.db.models import Deletion, UploadSession
from controller.db.session import make_engine, migrate, sessions, utcnow
from controller.lessons.scheduling import schedule_lesson
from controller.recordings.intake import record_segment
from controller.recordings.retention import RetentionPolicy, run_retention
from controller.storage.s3 import S3Location, S3Storage

T0 = datetime(2025, 1, 6, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    with s3_server() as running:
        yield running


def _storage(server: S3Server, bucket: str, presign_s: int = 300) -> S3Storage:
    location = S3Location.parse(f"s3://{bucket}/county?endpoint={server.endpoint}")
    return S3Storage(location, part_size=5 * 1024 * 1024, presign_s=presign_s)


def _client(server: S3Server) -> Any:
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")


def test_a_new_bucket_is_encrypted_and_not_public(server: S3Server) -> None:
    storage = _storage(server, "cb-new-bucket")
    storage.ensure_bucket()
    client = _client(server)
    rules = client.get_bucket_encryption(Bucket="cb-new-bucket")[
        "ServerSideEncryptionConfiguration"
    ]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = client.get_public_access_block(Bucket="cb-new-bucket")["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    storage.ensure_bucket()  # a second start leaves the bucket as it is


def _expires(url: str) -> int:
    return int(urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["X-Amz-Expires"][0])


def test_presigned_urls_last_five_minutes_unless_configured(server: S3Server) -> None:
    storage = _storage(server, "cb-presign")
    storage.ensure_bucket()
    upload = storage.begin("lessons/L/a/teacher/teacher-00001.mp4")
    assert _expires(storage.part_url("lessons/L/a/teacher/t.mp4", upload, 1) or "") == 300
    assert _expires(storage.read_url("lessons/L/a/teacher.mp4") or "") == 300
    assert _expires(_storage(server, "cb-presign", 60).read_url("x/y.mp4") or "") == 60
    with pytest.raises(ValueError, match="presigned URLs last"):
        _storage(server, "cb-presign", 8 * 24 * 3600)


@pytest.fixture
def db(tmp_path: pathlib.Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    factory = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with factory() as s:
        for cid in ("a", "b"):
            add_classroom(s, cid, cid, "", keys.public)
    return factory


def test_retention_clears_objects_manifests_and_unfinished_uploads(
    server: S3Server, db: sessionmaker[Session]
) -> None:
    storage = _storage(server, "cb-retention")
    storage.ensure_bucket()
    client = _client(server)
    with db() as s:
        old = schedule_lesson(s, "a", ["b"], T0, T0 + timedelta(minutes=40))
        lesson_id = old.id
    base = f"lessons/{lesson_id}/a"
    segment = storage.store_file(_file(b"segment"), f"{base}/teacher/teacher-00001.mp4")
    storage.store_file(_file(b"{}"), f"{base}/manifest.json")  # never catalogued
    with db() as s:
        record_segment(
            s, lesson_id, "a", "teacher", "teacher-00001.mp4", segment.key, segment.sha256, 7
        )
        # An agent began the next segment and sent one part, then the lesson was over.
        open_key = f"{base}/teacher/teacher-00002.mp4"
        backend_id = storage.begin(open_key)
        client.upload_part(
            Bucket="cb-retention",
            Key=f"county/{open_key}",
            UploadId=backend_id,
            PartNumber=1,
            Body=b"part of a video",
        )
        s.add(
            UploadSession(
                id="u1",
                lesson_id=lesson_id,
                classroom_id="a",
                rel="teacher/teacher-00002.mp4",
                key=open_key,
                size=100,
                sha256="0" * 64,
                backend_id=backend_id,
                part_size=storage.part_size,
                state="open",
                created_at=utcnow(),
            )
        )
        s.commit()
    # An upload no row knows about (a controller that crashed between begin and commit):
    # moto reports every upload as begun in 2010, so it is stale at once.
    stray = storage.begin("lessons/other/b/teacher/teacher-00001.mp4")
    # An upload an agent has open right now, in a lesson still kept.
    with db() as s:
        young = schedule_lesson(s, "b", ["a"], utcnow(), utcnow() + timedelta(minutes=40))
        fresh_key = f"lessons/{young.id}/b/teacher/teacher-00001.mp4"
        fresh = storage.begin(fresh_key)
        s.add(
            UploadSession(
                id="u2",
                lesson_id=young.id,
                classroom_id="b",
                rel="teacher/teacher-00001.mp4",
                key=fresh_key,
                size=100,
                sha256="0" * 64,
                backend_id=fresh,
                part_size=storage.part_size,
                state="open",
                created_at=utcnow(),
            )
        )
        s.commit()

    cleared = run_retention(db, storage, RetentionPolicy(days={"synchronous": 30}), now=utcnow())
    assert cleared == [lesson_id]
    assert storage.keys(f"lessons/{lesson_id}") == []
    uploads = client.list_multipart_uploads(Bucket="cb-retention").get("Uploads", [])
    ids = {u["UploadId"] for u in uploads}
    assert backend_id not in ids  # the lesson's open upload was aborted with its part
    assert stray not in ids  # unknown and (by the store's word) begun long ago
    assert fresh in ids  # begun just now by an agent: kept
    with db() as s:
        audited = {d.key for d in s.scalars(select(Deletion))}
        assert {f"{base}/teacher/teacher-00001.mp4", f"{base}/manifest.json"} <= audited
        assert s.get(UploadSession, "u1").state == "failed"  # type: ignore[union-attr]

    # A day later, unfinished uploads are abandoned: aborted.
    run_retention(db, storage, RetentionPolicy(), now=utcnow() + timedelta(days=1, minutes=1))
    uploads = client.list_multipart_uploads(Bucket="cb-retention").get("Uploads", [])
    assert uploads == []


def _file(data: bytes) -> pathlib.Path:
    import tempfile

    fd, name = tempfile.mkstemp(prefix="cb-s3-")
    with open(fd, "wb") as fh:
        fh.write(data)
    return pathlib.Path(name)
