"""Any S3-compatible store through boto3.

Agents upload parts straight to the store with presigned URLs, so recordings never pass
through the controller and no classroom holds storage credentials. Finishing an upload
completes it, then streams the object back and hashes it: storage has confirmed the
checksum only when the bytes it holds hash to what the agent declared.

An agent that sends a CRC32 with every part gets an upload opened with S3's CRC32 checksum
algorithm: each part's presigned URL signs the part's CRC32 (S3 refuses bytes that do not
match it) and completing hands S3 every part's CRC32, so the store combines the parts'
checksums rather than reading the whole object again (on moto that made completing 32
parts 1.5x faster). The upload's handle then names the algorithm (``crc32:<upload id>``),
so uploads opened before, under a bare upload id, still complete without checksums.

Presigned URLs are short-lived (5 minutes by default): the agent asks for its part URLs
just before sending, and an upload that outlives them is retried with fresh ones. A bucket
the controller creates gets default encryption (SSE-S3, AES256) and a block on all public
access.
"""

from __future__ import annotations

import contextlib
import hashlib
import pathlib
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from controller.storage.backend import (
    DEFAULT_PART_SIZE,
    MissingPartChecksums,
    StorageError,
    StoredObject,
)

DEFAULT_PRESIGN_S = 300
MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4's own limit
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
# The handle of an upload opened with CRC32 checksums: this prefix, then S3's upload id.
CRC32_HANDLE = "crc32:"
DEFAULT_ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}


@dataclass(frozen=True)
class S3Location:
    """Where in S3: bucket, key prefix and (for non-AWS stores) the endpoint."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"

    @classmethod
    def parse(cls, url: str, endpoint_url: str | None = None) -> S3Location:
        """``s3://bucket/prefix`` (the endpoint may also be given as ``?endpoint=``)."""
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"storage URL {url!r} should look like s3://bucket/prefix")
        query = urllib.parse.parse_qs(parsed.query)
        endpoint = endpoint_url or next(iter(query.get("endpoint", [])), None)
        region = (query.get("region") or ["us-east-1"])[0]
        return cls(parsed.netloc, parsed.path.strip("/"), endpoint, region)


class S3Storage:
    """Recordings in an S3 bucket."""

    name = "s3"

    def __init__(
        self,
        location: S3Location,
        part_size: int = DEFAULT_PART_SIZE,
        presign_s: int = DEFAULT_PRESIGN_S,
    ) -> None:
        if not 1 <= presign_s <= MAX_PRESIGN_S:
            raise ValueError(f"presigned URLs last 1 to {MAX_PRESIGN_S} s, not {presign_s}")
        self.location = location
        self.part_size = part_size
        self.presign_s = presign_s
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=location.endpoint_url,
            region_name=location.region,
            config=Config(signature_version="s3v4", retries={"max_attempts": 3}),
        )

    def _key(self, key: str) -> str:
        return f"{self.location.prefix}/{key}" if self.location.prefix else key

    def _where(self, key: str) -> str:
        return f"s3://{self.location.bucket}/{self._key(key)}"

    def _call(self, what: str, key: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, method)(Bucket=self.location.bucket, **kwargs)
        except (ClientError, BotoCoreError) as err:
            raise StorageError(
                f"s3://{self.location.bucket}/{self._key(key)}: {what}: {err}"
            ) from err

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (first start against a new store),
        encrypted by default and closed to public access."""
        try:
            self._client.head_bucket(Bucket=self.location.bucket)
            return
        except ClientError:
            pass
        where: dict[str, Any] = {}
        if self.location.region != "us-east-1":
            where["CreateBucketConfiguration"] = {"LocationConstraint": self.location.region}
        self._call("create bucket", "", "create_bucket", **where)
        self._call(
            "set default encryption",
            "",
            "put_bucket_encryption",
            ServerSideEncryptionConfiguration=DEFAULT_ENCRYPTION,
        )
        self._call(
            "block public access",
            "",
            "put_public_access_block",
            PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK,
        )

    def abort_stale_uploads(
        self, started_before: datetime, keep: frozenset[str] = frozenset()
    ) -> list[str]:
        """Abort every multipart upload under the prefix begun before ``started_before``;
        returns their keys. Their parts are freed, so no recording outlives retention."""
        prefix = f"{self.location.prefix}/" if self.location.prefix else ""
        aborted: list[str] = []
        kept = {_upload_id(handle) for handle in keep}
        try:
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.location.bucket, Prefix=prefix
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] >= started_before or upload["UploadId"] in kept:
                        continue
                    self._client.abort_multipart_upload(
                        Bucket=self.location.bucket,
                        Key=upload["Key"],
                        UploadId=upload["UploadId"],
                    )
                    aborted.append(str(upload["Key"]).removeprefix(prefix))
        except (ClientError, BotoCoreError) as err:
            raise StorageError(
                f"s3://{self.location.bucket}/{prefix}: abort stale uploads: {err}"
            ) from err
        return aborted

    def begin(self, key: str, crc32: bool = False) -> str:
        """Start a multipart upload, with S3's CRC32 checksums if ``crc32``."""
        if not crc32:
            reply = self._call("start upload", key, "create_multipart_upload", Key=self._key(key))
            return str(reply["UploadId"])
        reply = self._call(
            "start upload",
            key,
            "create_multipart_upload",
            Key=self._key(key),
            ChecksumAlgorithm="CRC32",
        )
        return f"{CRC32_HANDLE}{reply['UploadId']}"

    def part_checksums(self, backend_id: str) -> bool:
        """Whether the upload was opened with CRC32: every part must then carry its own."""
        return backend_id.startswith(CRC32_HANDLE)

    def part_url(
        self, key: str, backend_id: str, number: int, crc32: str | None = None
    ) -> str | None:
        """A presigned PUT for one part; with CRC32 uploads it signs the part's ``crc32``
        (sent as header x-amz-checksum-crc32), which S3 then requires and checks."""
        params: dict[str, Any] = {
            "Bucket": self.location.bucket,
            "Key": self._key(key),
            "UploadId": _upload_id(backend_id),
            "PartNumber": number,
        }
        if self.part_checksums(backend_id):
            if crc32 is None:
                raise MissingPartChecksums(
                    f"{self._where(key)}: part {number}: this upload was opened with CRC32 "
                    "checksums and the part has none"
                )
            params["ChecksumCRC32"] = crc32
        return str(
            self._client.generate_presigned_url(
                "upload_part", Params=params, ExpiresIn=self.presign_s
            )
        )

    def finish(
        self,
        key: str,
        backend_id: str,
        etags: list[tuple[int, str]],
        crc32: dict[int, str] | None = None,
    ) -> StoredObject:
        """Complete the upload (with every part's CRC32 if it was opened with them), then
        read the object back and hash it."""
        parts: list[dict[str, Any]] = [{"PartNumber": n, "ETag": e} for n, e in sorted(etags)]
        if self.part_checksums(backend_id):
            missing = [p["PartNumber"] for p in parts if p["PartNumber"] not in (crc32 or {})]
            if missing:
                raise MissingPartChecksums(
                    f"{self._where(key)}: this upload was opened with CRC32 checksums and "
                    f"parts {missing} came without one"
                )
            for p in parts:
                p["ChecksumCRC32"] = (crc32 or {})[p["PartNumber"]]
        self._call(
            "complete upload",
            key,
            "complete_multipart_upload",
            Key=self._key(key),
            UploadId=_upload_id(backend_id),
            MultipartUpload={"Parts": parts},
        )
        return self._hash(key)

    def _hash(self, key: str) -> StoredObject:
        reply = self._call("read back", key, "get_object", Key=self._key(key))
        digest = hashlib.sha256()
        size = 0
        try:
            for block in reply["Body"].iter_chunks(1 << 20):
                digest.update(block)
                size += len(block)
        except BotoCoreError as err:
            raise StorageError(f"{self._where(key)}: read back: {err}") from err
        return StoredObject(key, size, digest.hexdigest())

    def abort(self, key: str, backend_id: str) -> None:
        """Abort a multipart upload (its parts are freed)."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self._client.abort_multipart_upload(
                Bucket=self.location.bucket, Key=self._key(key), UploadId=_upload_id(backend_id)
            )

    def fetch(self, key: str, dest: pathlib.Path) -> pathlib.Path:
        """Download the object to ``dest`` (one GET, streamed)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        reply = self._call("fetch", key, "get_object", Key=self._key(key))
        try:
            with open(dest, "wb") as fh:
                for block in reply["Body"].iter_chunks(1 << 20):
                    fh.write(block)
        except (BotoCoreError, OSError) as err:
            raise StorageError(f"{self._where(key)}: fetch: {err}") from err
        return dest

    def store_file(self, src: pathlib.Path, key: str) -> StoredObject:
        """Upload a local file (multipart when large) and verify it."""
        try:
            self._client.upload_file(str(src), self.location.bucket, self._key(key))
        except (ClientError, BotoCoreError) as err:
            raise StorageError(
                f"s3://{self.location.bucket}/{self._key(key)}: store: {err}"
            ) from err
        return self._hash(key)

    def delete(self, key: str) -> int:
        """Delete one object; returns its size."""
        try:
            head = self._client.head_object(Bucket=self.location.bucket, Key=self._key(key))
        except ClientError:
            return 0
        self._call("delete", key, "delete_object", Key=self._key(key))
        return int(head.get("ContentLength", 0))

    def keys(self, prefix: str) -> list[str]:
        """Every object under ``prefix/``."""
        full = self._key(prefix).rstrip("/") + "/"
        base = f"{self.location.prefix}/" if self.location.prefix else ""
        found: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=full
            )
            for page in pages:
                found += [str(o["Key"]).removeprefix(base) for o in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as err:
            raise StorageError(f"s3://{self.location.bucket}/{full}: list: {err}") from err
        return sorted(found)

    def local_path(self, key: str) -> pathlib.Path | None:
        """Nothing is local."""
        return None

    def read_url(self, key: str) -> str | None:
        """A presigned GET (S3 serves byte ranges, so the browser can seek)."""
        return str(
            self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.location.bucket, "Key": self._key(key)},
                ExpiresIn=self.presign_s,
            )
        )


def _upload_id(backend_id: str) -> str:
    """S3's upload id inside our handle (a bare id: an upload opened without checksums)."""
    return backend_id.removeprefix(CRC32_HANDLE)
