"""The controller's HTTP API: agent uploads, the recording catalogue and playback,
lesson/classroom JSON, and the web console (every ``/api/v1`` route behind AuthGate)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller import upload_tokens
from controller.agent_actions import OPENAPI_PATHS as ACTION_PATHS
from controller.agent_actions import AgentActions, Requester
from controller.analytics.api import OPENAPI_PATHS as ANALYTICS_PATHS
from controller.analytics.api import AnalyticsApi
from controller.api_common import error, run_db
from controller.auth.api import AuthApi
from controller.auth.middleware import AuthGate, scope_of
from controller.auth.scope import Scope
from controller.auth.viewing import VIEW_DETAIL
from controller.body_limits import SIGN_IN_BODY_LIMIT, STREAMED, BodyLimits, too_large
from controller.classrooms_api import OPENAPI_PATHS as CLASSROOMS_PATHS
from controller.classrooms_api import ClassroomsApi, classroom_document, school_profiles
from controller.console.routes import add_headers as console_headers
from controller.console.routes import console_routes
from controller.dashboard_api import DashboardApi
from controller.db.models import Classroom, Deletion, Lesson, Recording
from controller.db.session import as_utc
from controller.delivery.api import OPENAPI_PATHS as DELIVERY_PATHS
from controller.delivery.api import DeliveryApi
from controller.emergency.api import OPENAPI_PATHS as EMERGENCY_PATHS
from controller.emergency.api import EmergencyApi
from controller.emergency.publishing import emergency_publisher
from controller.errors import InvalidRequest, NotFound, NotYours
from controller.floor.api import OPENAPI_PATHS as FLOOR_PATHS
from controller.floor.api import FloorApi, FloorSpreader
from controller.keys import ServerKeys
from controller.lessons import get_lesson, lesson_document
from controller.library.api import LibraryApi
from controller.library.openapi import OPENAPI_PATHS as LIBRARY_PATHS
from controller.live_push.api import OPENAPI_PATHS as LIVE_PUSH_PATHS
from controller.live_push.api import LivePushApi
from controller.metrics.api import METRICS_PATHS, MetricsApi
from controller.network_api import NetworkApi
from controller.notify.api import OPENAPI_PATHS as NOTIFY_PATHS
from controller.notify.api import NotifyApi
from controller.notify.sender import Sender
from controller.openapi import OPENAPI_KEY, assemble
from controller.patrol import OPENAPI_PATHS as PATROL_PATHS
from controller.patrol import PatrolApi, Relays
from controller.publishing.api import OPENAPI_PATHS as PUBLISHING_PATHS
from controller.publishing.api import PublishingApi
from controller.publishing.origin import OriginConfig
from controller.recordings import catalogue_document
from controller.recordings_api import OPENAPI_PATHS as RECORDINGS_PATHS
from controller.recordings_api import RecordingsApi
from controller.releases.api import OPENAPI_PATHS as RELEASE_PATHS
from controller.releases.api import ReleasesApi
from controller.report_archive.api import OPENAPI_PATHS as REPORT_ARCHIVE_PATHS
from controller.report_archive.api import ReportArchiveApi
from controller.review.api import OPENAPI_PATHS as REVIEW_PATHS
from controller.review.api import ReviewApi
from controller.security import SecurityPolicy
from controller.storage.backend import ChecksumMismatch, StorageError, object_key
from controller.storage.errors import StitchError
from controller.storage.local import LocalStorage
from controller.timetable.api import OPENAPI, TimetableApi
from controller.timetable.check_api import LessonCheckApi
from controller.timetable.csv_import import MAX_BYTES as CSV_MAX_BYTES
from controller.timetable.quotas_api import OPENAPI_PATHS as TERM_QUOTAS_PATHS
from controller.timetable.quotas_api import TermQuotasApi
from controller.tls.policy import TlsPolicy, add_hsts
from controller.uploads import UploadRequest, UploadService, parse_complete, parse_targets
from controller.uploads_openapi import OPENAPI_PATHS as UPLOAD_PATHS
from protocols.uploads import CRC32_HEADER, check_crc32, crc32_text

log = logging.getLogger(__name__)

PART_ROUTE = "/api/v1/uploads/{upload}/parts/{n}"
# The media type of a stitched track file (fragmented MP4) by the catalogue's kind.
MEDIA_TYPES = {"video": "video/mp4", "audio": "audio/mp4"}
BODY_LIMITS = {
    ("POST", "/api/v1/session"): SIGN_IN_BODY_LIMIT,
    ("PUT", PART_ROUTE): STREAMED,  # bounded by put_part once the upload token is checked
    # The CSV's own cap, so the import names it (row count and size) rather than 1 MiB.
    ("POST", "/api/v1/timetable/import"): CSV_MAX_BYTES,
}


async def _listen(site: web.TCPSite) -> int:
    await site.start()
    server = site._server
    assert server is not None
    port: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return port


class PartTooLarge(Exception):
    """A chunked part that ran past its limit while it streamed in."""


class PartChecksumMismatch(Exception):
    """A part's bytes do not match the CRC32 sent with it (the CRC32 they have)."""


class HttpApi:
    """Routes and handlers; holds no state of its own beyond its collaborators."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        uploads: UploadService,
        keys: ServerKeys,
        presence_online: Callable[[], list[str]],
        relays: Callable[[], Relays | None] = lambda: None,
        hub: Callable[[], Requester | None] = lambda: None,
        floors: Callable[[], FloorSpreader | None] = lambda: None,
        security: SecurityPolicy | None = None,
        tls_policy: TlsPolicy | None = None,
        notify_poke: Callable[[], None] = lambda: None,
        notify_sender: Sender | None = None,
        publishing: OriginConfig | None = None,
    ) -> None:
        security = security or SecurityPolicy()
        self._sessions = sessions
        self.uploads = uploads
        self._keys = keys
        self._online = presence_online
        self.upload_errors = 0
        self.body_limits = BodyLimits(BODY_LIMITS)
        self.tls_policy = tls_policy or TlsPolicy()
        self.metrics = MetricsApi(sessions, presence_online)
        # Several controllers: leadership and the database's state for /healthz (set by
        # the daemon; None on SQLite).
        self.health_detail: Callable[[], dict[str, object]] | None = None
        self.app = web.Application(
            client_max_size=self.body_limits.default,
            # The TLS rule before anything reads or audits a request, but after the body
            # limits, whose clone() would drop the https scheme and client address a
            # trusted proxy's request is given.
            middlewares=[
                self.metrics.middleware,  # times every API request, refusals included
                self.body_limits.middleware,
                self.tls_policy.middleware,
                AuthGate(sessions, security).middleware,
            ],
        )
        self.app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/api/v1/classrooms", self.classrooms),
                web.get("/api/v1/lessons", self.lessons),
                web.get("/api/v1/lessons/{lesson}", self.lesson),
                web.get("/api/v1/lessons/{lesson}/recordings", self.catalogue),
                web.get("/api/v1/recordings/{lesson}/{classroom}/{file}", self.recording_file),
                web.get("/api/v1/deletions", self.deletions),
                web.post("/api/v1/uploads", self.open_upload),
                web.post("/api/v1/uploads/{upload}/urls", self.part_urls),
                web.put(PART_ROUTE, self.put_part),
                web.post("/api/v1/uploads/{upload}/complete", self.complete_upload),
            ]
        )
        self.app.add_routes(LessonCheckApi(sessions).routes())
        self.app.add_routes(TimetableApi(sessions).routes())
        self.app.add_routes(TermQuotasApi(sessions).routes())
        self.app.add_routes(ReportArchiveApi(sessions, uploads.storage).routes())
        self.app.add_routes(DashboardApi(sessions, presence_online).routes())
        self.app.add_routes(NetworkApi(sessions, presence_online).routes())
        self.patrol = PatrolApi(sessions, relays, presence_online)
        self.app.add_routes(self.patrol.routes())
        self.app.add_routes(FloorApi(sessions, floors).routes())
        self.app.add_routes(LivePushApi(sessions).routes())
        self.app.add_routes(EmergencyApi(sessions, emergency_publisher(publishing)).routes())
        self.app.add_routes(PublishingApi(sessions, publishing).routes())
        self.app.add_routes(ReviewApi(sessions).routes())
        self.app.add_routes(AnalyticsApi(sessions).routes())
        self.app.add_routes(NotifyApi(sessions, notify_poke, notify_sender).routes())
        self.app.add_routes(RecordingsApi(sessions).routes())
        self.app.add_routes(LibraryApi(sessions, uploads.storage).routes())
        self.app.add_routes(DeliveryApi(sessions, uploads.storage).routes())
        self.app.add_routes(ClassroomsApi(sessions, presence_online).routes())
        self.app.add_routes(AgentActions(hub).routes())
        self.app.add_routes(ReleasesApi(sessions, presence_online).routes())
        self.app.add_routes(AuthApi(sessions, security).routes())
        self.app.add_routes(self.metrics.routes())
        self.app[OPENAPI_KEY] = assemble(
            OPENAPI,
            PATROL_PATHS,
            FLOOR_PATHS,
            LIVE_PUSH_PATHS,
            EMERGENCY_PATHS,
            PUBLISHING_PATHS,
            REVIEW_PATHS,
            ANALYTICS_PATHS,
            NOTIFY_PATHS,
            RECORDINGS_PATHS,
            LIBRARY_PATHS,
            DELIVERY_PATHS,
            CLASSROOMS_PATHS,
            UPLOAD_PATHS,
            ACTION_PATHS,
            METRICS_PATHS,
            RELEASE_PATHS,
            TERM_QUOTAS_PATHS,
            REPORT_ARCHIVE_PATHS,
        )
        self.app.add_routes(console_routes())
        self.app.on_response_prepare.append(console_headers)
        self.app.on_response_prepare.append(add_hsts)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.proxy_port: int | None = None

    async def start(
        self, host: str, port: int, *, tls: ssl.SSLContext, proxy_port: int | None = None
    ) -> None:
        """Serve HTTPS on ``host:port`` (0 picks a free port) and, with trusted proxies,
        plain HTTP for them on ``proxy_port``."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        self.port = await _listen(web.TCPSite(self._runner, host, port, ssl_context=tls))
        if self.tls_policy.trusted_proxies and proxy_port is not None:
            self.proxy_port = await _listen(web.TCPSite(self._runner, host, proxy_port))

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness probe: 200 while the process serves. ``degraded`` is true while a
        controller on PostgreSQL cannot reach its database (``leadership`` says since
        when, and whether it leads): it still answers, so a load balancer keeps it."""
        if self.health_detail is None:
            return web.json_response({"ok": True, "degraded": False})
        detail = self.health_detail()
        # Unauthenticated: whether it leads and since when it is degraded, but no host
        # or node names (those are in the authenticated /api/v1/metrics).
        shown = {k: detail.get(k) for k in ("leader", "leader_since", "degraded_since")}
        degraded = detail.get("degraded_since") is not None
        return web.json_response({"ok": True, "degraded": degraded, "leadership": shown})

    async def classrooms(self, request: web.Request) -> web.StreamResponse:
        """Every classroom with its enrolment, online state, agent version, hardware and
        network profile, devices and latest heartbeat (the inventory)."""
        online = set(self._online())
        where = scope_of(request).classroom_filter()

        def work(db: Session) -> web.StreamResponse:
            query = select(Classroom).order_by(Classroom.id)
            rooms = db.scalars(query if where is None else query.where(where)).all()
            profiles = school_profiles(db)
            return web.json_response(
                [classroom_document(r, r.id in online, profiles) for r in rooms]
            )

        return await run_db(self._sessions, work)

    async def lessons(self, request: web.Request) -> web.StreamResponse:
        """Lessons, newest first (those of the caller's school, if scoped)."""
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            query = select(Lesson).order_by(Lesson.start_at.desc()).limit(500)
            where = scope.lesson_filter(db)
            rows = db.scalars(query if where is None else query.where(where)).all()
            return web.json_response(
                [
                    {
                        "id": x.id,
                        "lead": x.lead_classroom_id,
                        "state": x.state,
                        "rung": x.rung,
                        "receivers": [r.classroom_id for r in x.receivers],
                        "start_at": as_utc(x.start_at).isoformat(),
                        "end_at": as_utc(x.end_at).isoformat(),
                    }
                    for x in rows
                ]
            )

        return await run_db(self._sessions, work)

    async def lesson(self, request: web.Request) -> web.StreamResponse:
        """One lesson with its events, reports and recordings."""
        storage = self.uploads.storage
        root = storage.root if isinstance(storage, LocalStorage) else None
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            doc = lesson_document(db, get_lesson(db, request.match_info["lesson"]), root)
            doc["recordings"] = _in_scope(db, scope, doc["recordings"])
            return web.json_response(doc)

        return await run_db(self._sessions, work)

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

    async def catalogue(self, request: web.Request) -> web.StreamResponse:
        """The lesson's recordings: classrooms, tracks, segments, coverage and gaps."""
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            doc = catalogue_document(db, request.match_info["lesson"])
            doc["classrooms"] = _in_scope(db, scope, doc["classrooms"])
            return web.json_response(doc)

        return await run_db(self._sessions, work)

    async def recording_file(self, request: web.Request) -> web.StreamResponse:
        """A stitched recording the catalogue lists, with its own media type: served with
        byte ranges, or redirected to storage. Nothing else under the lesson is served."""
        m = request.match_info
        try:
            key = object_key("lessons", m["lesson"], m["classroom"], m["file"])
        except ValueError as err:
            return error(400, str(err))

        def find() -> Recording | None:
            with self._sessions() as db:
                return db.scalar(
                    select(Recording).where(
                        Recording.lesson_id == m["lesson"],
                        Recording.classroom_id == m["classroom"],
                        Recording.path == key,
                    )
                )

        rec = await asyncio.to_thread(find)
        missing = (
            f"{key}: no such recording; GET /api/v1/lessons/{m['lesson']}/recordings lists "
            "the lesson's recordings"
        )
        if rec is None:
            return error(404, missing)
        media_type = MEDIA_TYPES.get(rec.kind, "application/octet-stream")
        storage = self.uploads.storage
        local = storage.local_path(key)
        if local is not None:
            try:
                size = local.stat().st_size
            except OSError:
                return error(404, missing)
            request[VIEW_DETAIL] = _served(request, size, rec.duration_s)
            return web.FileResponse(local, headers={"Content-Type": media_type})
        url = await asyncio.to_thread(storage.read_url, key)
        if url is None:
            return error(404, missing)
        request[VIEW_DETAIL] = {"redirect": True, "duration_s": round(rec.duration_s, 1)}
        return web.Response(status=302, headers={"Location": url})

    async def deletions(self, request: web.Request) -> web.StreamResponse:
        """The audit log of deleted recordings, newest first."""

        def work(db: Session) -> web.StreamResponse:
            rows = db.scalars(select(Deletion).order_by(Deletion.id.desc()).limit(1000)).all()
            return web.json_response(
                [
                    {
                        "at": as_utc(d.at).isoformat(),
                        "lesson_id": d.lesson_id,
                        "classroom_id": d.classroom_id,
                        "key": d.key,
                        "bytes": d.bytes,
                        "sha256": d.sha256,
                        "reason": d.reason,
                        "actor": d.actor,
                    }
                    for d in rows
                ]
            )

        return await run_db(self._sessions, work)


def _in_scope(db: Session, scope: Scope, rows: Any) -> Any:
    """The rows (each with a "classroom") whose classroom is in ``scope``."""
    if scope.county:
        return rows
    rooms = scope.classroom_ids(db) or set()
    return [r for r in rows if r["classroom"] in rooms]


def _served(request: web.Request, size: int, duration_s: float) -> dict[str, Any]:
    """The bytes a ranged read will send, and about how many seconds of media that is."""
    try:
        rng = request.http_range
    except ValueError:
        return {"range": request.headers.get("Range", "")[:100]}
    start = rng.start or 0
    if start < 0:
        sent = min(-start, size)
    else:
        stop = size if rng.stop is None else min(rng.stop, size)
        sent = max(0, stop - start)
    out: dict[str, Any] = {"bytes": sent}
    if size:
        out["seconds"] = round(duration_s * sent / size, 1)
    if "Range" in request.headers and (rng.start is not None or rng.stop is not None):
        # FileResponse settles 200 or 206 only as it sends; a satisfiable range is a 206.
        out["range"] = request.headers["Range"][:100]
        if sent:
            out["status"] = 206
    return out
