"""The agents' upload routes: open or resume a multipart upload, part URLs, parts streamed
to the local backend (size- and CRC32-checked as they arrive), and completion."""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.common.api_common import error
from controller.common.body_limits import too_large
from controller.common.errors import InvalidRequest, NotFound, NotYours
from controller.recordings import upload_tokens
from controller.recordings.uploads import (
    UploadRequest,
    UploadService,
    parse_complete,
    parse_targets,
)
from controller.storage.backend import ChecksumMismatch, StorageError
from controller.storage.errors import StitchError
from controller.storage.local import LocalStorage
from protocols.uploads import CRC32_HEADER, check_crc32, crc32_text

log = logging.getLogger(__name__)

PART_ROUTE = "/api/v1/uploads/{upload}/parts/{n}"


class PartTooLarge(Exception):
    """A chunked part that ran past its limit while it streamed in."""


class PartChecksumMismatch(Exception):
    """A part's bytes do not match the CRC32 sent with it (the CRC32 they have)."""


class UploadsApi:
    """Upload handlers, each behind the classroom's upload token (not the console's
    sign-in); counts the uploads it refused or could not store."""

    def __init__(self, sessions: sessionmaker[Session], uploads: UploadService) -> None:
        self._sessions = sessions
        self.uploads = uploads
        self.upload_errors = 0

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the controller's application."""
        return [
            web.post("/api/v1/uploads", self.open_upload),
            web.post("/api/v1/uploads/{upload}/urls", self.part_urls),
            web.put(PART_ROUTE, self.put_part),
            web.post("/api/v1/uploads/{upload}/complete", self.complete_upload),
        ]

    async def _classroom(self, request: web.Request) -> str | None:
        """The classroom whose upload token the request carries (X-Classroom + bearer)."""
        classroom = request.headers.get("X-Classroom", "")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not classroom or not token:
            return None

        def work() -> bool:
            with self._sessions() as db:
                return upload_tokens.check(db, classroom, token)

        return classroom if await asyncio.to_thread(work) else None

    async def _json(self, request: web.Request) -> object:
        try:
            return await request.json()
        except ValueError as err:
            raise InvalidRequest(f"body is not JSON: {err}") from None

    async def _guarded(
        self, request: web.Request, work: Callable[[str], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        classroom = await self._classroom(request)
        if classroom is None:
            return error(401, "missing or wrong upload token (headers X-Classroom, Authorization)")
        try:
            return await work(classroom)
        except NotFound as err:
            return error(404, str(err))
        except NotYours as err:
            return error(403, str(err))
        except ChecksumMismatch as err:
            self.upload_errors += 1
            log.warning("upload rejected: %s", err)
            return error(422, str(err))
        except StitchError as err:
            self.upload_errors += 1
            log.error("recording stored but not playable: %s", err)
            return error(422, f"the recording is stored but could not be stitched: {err}")
        except InvalidRequest as err:
            self.upload_errors += 1
            return error(400, str(err))
        except (StorageError, OSError) as err:
            self.upload_errors += 1
            log.warning("storage failed: %s", err)
            return error(503, f"storage failed: {err}; retry later")

    async def open_upload(self, request: web.Request) -> web.StreamResponse:
        """Open or resume a multipart upload of one file."""

        async def work(classroom: str) -> web.StreamResponse:
            req = UploadRequest.parse(await self._json(request))
            doc = await asyncio.to_thread(self.uploads.open, classroom, req)
            return web.json_response(doc, status=200 if doc["done"] else 201)

        return await self._guarded(request, work)

    async def part_urls(self, request: web.Request) -> web.StreamResponse:
        """Where to PUT the listed parts."""

        async def work(classroom: str) -> web.StreamResponse:
            ask = parse_targets(await self._json(request))
            base = f"{request.scheme}://{request.host}"
            doc = await asyncio.to_thread(
                self.uploads.part_targets,
                classroom,
                request.match_info["upload"],
                ask,
                base,
            )
            return web.json_response(doc)

        return await self._guarded(request, work)

    async def put_part(self, request: web.Request) -> web.StreamResponse:
        """One part of an upload to the local backend."""

        async def work(classroom: str) -> web.StreamResponse:
            storage = self.uploads.storage
            if not isinstance(storage, LocalStorage):
                raise InvalidRequest("this controller's storage takes parts directly; ask for URLs")
            try:
                number = int(request.match_info["n"])
            except ValueError:
                raise InvalidRequest("part number must be an integer") from None
            backend_id, limit = await asyncio.to_thread(
                self.uploads.part_target, classroom, request.match_info["upload"], number
            )
            what = f"part {number} of upload {request.match_info['upload']}"
            declared = request.content_length
            if declared is not None and declared > limit:
                return too_large(limit, what, declared)
            sent_crc = request.headers.get(CRC32_HEADER)
            if sent_crc is not None:
                try:
                    check_crc32(sent_crc, what)
                except ValueError as err:
                    raise InvalidRequest(str(err)) from None
            received = 0
            crc = 0

            async def chunks() -> AsyncIterator[bytes]:
                nonlocal received, crc
                async for chunk in request.content.iter_chunked(1 << 20):
                    received += len(chunk)
                    if received > limit:
                        raise PartTooLarge
                    crc = zlib.crc32(chunk, crc)
                    yield chunk
                # Raised inside storage's loop, before it keeps the part: a part whose
                # bytes do not match the CRC32 the agent sent is never stored (S3 answers
                # BadDigest the same way).
                if sent_crc is not None and crc32_text(crc) != sent_crc:
                    raise PartChecksumMismatch(crc32_text(crc))

            try:
                etag, size = await storage.put_part(backend_id, number, chunks())
            except PartTooLarge:
                return too_large(limit, what)
            except PartChecksumMismatch as err:
                self.upload_errors += 1
                return error(
                    400,
                    f"{what}: the CRC32 sent ({sent_crc}) does not match the bytes received "
                    f"({err.args[0]}); the part was not stored. Send it again",
                )
            if size != limit:
                raise InvalidRequest(
                    f"{what}: part {number} must be {limit} bytes; got {size}. Send it again"
                )
            return web.json_response({"n": number, "bytes": size}, headers={"ETag": f'"{etag}"'})

        return await self._guarded(request, work)

    async def complete_upload(self, request: web.Request) -> web.StreamResponse:
        """Assemble the parts; storage reads the object back and checks its SHA-256."""

        async def work(classroom: str) -> web.StreamResponse:
            done = parse_complete(await self._json(request))
            doc = await asyncio.to_thread(
                self.uploads.complete, classroom, request.match_info["upload"], done
            )
            return web.json_response(doc, status=201)

        return await self._guarded(request, work)
