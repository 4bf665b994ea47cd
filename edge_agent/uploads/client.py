"""The agent's side of the controller's upload API (open, part URLs, complete).

Calls to the controller go over HTTPS only, verified against the certificate pinned at
enrolment and nothing else. Presigned part URLs of an S3 store are the store's own
(signed per part) and use the system's trust store.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from edge_agent.errors import InsecureUpload, UploadFailed
from protocols.uploads import (
    CRC32,
    CRC32_HEADER,
    CompleteRequest,
    PartTargetsRequest,
    StoredPart,
)


class UploadSessionLost(UploadFailed):
    """The controller no longer knows the upload: open it again."""


class ChecksumRejected(UploadFailed):
    """Storage read the object back and it did not match: upload it again."""


class UploadApi:
    """Typed calls; every failure raises an ``UploadFailed`` naming the call and cause."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        classroom_id: str,
        token: str,
        tls: ssl.SSLContext | None,
    ) -> None:
        """Raises ``InsecureUpload`` for a non-HTTPS URL or without a pinned context."""
        self._base = _https_only(base_url.rstrip("/"))
        if tls is None:
            raise InsecureUpload(
                "no controller certificate is pinned (this agent was enrolled before the "
                "controller served HTTPS); enrol it again: classroom-agent enroll"
            )
        self._http = http
        self._tls = tls
        self._auth = {"Authorization": f"Bearer {token}", "X-Classroom": classroom_id}

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self._base}{path}"
        async with self._http.post(url, json=body, headers=self._auth, ssl=self._tls) as resp:
            text = await resp.text()
            if resp.status == 404 and "/uploads/" in path:
                raise UploadSessionLost(f"POST {path}: {text[:300]}")
            if resp.status == 422:
                raise ChecksumRejected(f"POST {path}: {text[:300]}")
            if resp.status not in (200, 201):
                raise UploadFailed(f"POST {path}: HTTP {resp.status}: {text[:300]}")
            doc: dict[str, Any] = await resp.json(content_type=None)
            return doc

    async def open(self, lesson_id: str, rel: str, size: int, sha256: str) -> dict[str, Any]:
        """Open or resume an upload, saying every part will carry its CRC32;
        ``{"done": true}`` when storage already has the file."""
        return await self._post(
            "/api/v1/uploads",
            {"lesson_id": lesson_id, "rel": rel, "size": size, "sha256": sha256, "checksum": CRC32},
        )

    async def targets(
        self, upload_id: str, numbers: list[int], crc32: dict[int, str] | None = None
    ) -> list[dict[str, Any]]:
        """Where to PUT each part (whose CRC32s are ``crc32``); a target with ``crc32``
        must be sent with that value as header x-amz-checksum-crc32."""
        ask = PartTargetsRequest(numbers, dict(crc32 or {}))
        doc = await self._post(f"/api/v1/uploads/{upload_id}/urls", ask.to_json())
        parts: list[dict[str, Any]] = doc["parts"]
        return parts

    async def put_part(
        self,
        url: str,
        auth: bool,
        body: bytes | AsyncIterator[bytes],
        size: int,
        crc32: str | None = None,
    ) -> str:
        """PUT one part (with its CRC32, which storage checks, if given); returns storage's
        ETag for it."""
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        if crc32 is not None:
            headers[CRC32_HEADER] = crc32
        # A part sent to the controller carries the upload token: pinned HTTPS only.
        tls: ssl.SSLContext | bool = True
        if auth:
            headers.update(self._auth)
            tls = self._tls
            _https_only(url)
        async with self._http.put(url, data=body, headers=headers, ssl=tls) as resp:
            text = await resp.text()
            if resp.status == 404 and auth:
                raise UploadSessionLost(f"PUT part: {text[:300]}")
            if resp.status not in (200, 201):
                where = url.split("?", 1)[0]
                sent = f" (sent with CRC32 {crc32})" if crc32 is not None else ""
                raise UploadFailed(f"PUT {where}: HTTP {resp.status}{sent}: {text[:300]}")
            etag = resp.headers.get("ETag")
            if not etag:
                raise UploadFailed(f"PUT {url.split('?', 1)[0]}: storage sent no ETag")
            return etag

    async def complete(self, upload_id: str, parts: list[StoredPart]) -> dict[str, Any]:
        """Finish with every part's ETag and CRC32 (where kept); storage reads the file
        back and answers its SHA-256."""
        return await self._post(
            f"/api/v1/uploads/{upload_id}/complete", CompleteRequest(parts).to_json()
        )


def _https_only(url: str) -> str:
    if not url.lower().startswith("https://"):
        raise InsecureUpload(
            f"refusing to upload to {url.split('?', 1)[0]}: the controller must be reached "
            "over https://, verified against the certificate pinned at enrolment"
        )
    return url
