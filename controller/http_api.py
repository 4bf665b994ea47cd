"""The controller's HTTP API: agent uploads, the recording catalogue and playback,
lesson/classroom JSON, and the web console (every ``/api/v1`` route behind AuthGate)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agent_actions import OPENAPI_PATHS as ACTION_PATHS
from controller.agent_actions import AgentActions, Requester
from controller.api_common import error
from controller.auth.api import AuthApi
from controller.auth.middleware import AuthGate
from controller.classrooms_api import OPENAPI_PATHS as CLASSROOMS_PATHS
from controller.classrooms_api import ClassroomsApi, classroom_document, school_profiles
from controller.console.routes import console_routes
from controller.dashboard_api import DashboardApi
from controller.db.models import Classroom, Deletion, Lesson
from controller.db.session import as_utc
from controller.errors import InvalidRequest, NotFound
from controller.keys import ServerKeys
from controller.lessons import get_lesson, lesson_document
from controller.network_api import NetworkApi
from controller.patrol import OPENAPI_PATHS as PATROL_PATHS
from controller.patrol import PatrolApi, Relays
from controller.recordings import catalogue_document
from controller.recordings_api import OPENAPI_PATHS as RECORDINGS_PATHS
from controller.recordings_api import RecordingsApi
from controller.storage.backend import ChecksumMismatch, StorageError, object_key
from controller.storage.errors import StitchError
from controller.storage.local import LocalStorage
from controller.timetable.api import OPENAPI, TimetableApi
from controller.timetable.check_api import LessonCheckApi
from controller.uploads import UploadRequest, UploadService, parse_etags
from controller.uploads_openapi import OPENAPI_PATHS as UPLOAD_PATHS

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 4 * 1024**3


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
    ) -> None:
        self._sessions = sessions
        self.uploads = uploads
        self._keys = keys
        self._online = presence_online
        self.upload_errors = 0
        self.app = web.Application(
            client_max_size=MAX_UPLOAD_BYTES, middlewares=[AuthGate(sessions).middleware]
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
                web.put("/api/v1/uploads/{upload}/parts/{n}", self.put_part),
                web.post("/api/v1/uploads/{upload}/complete", self.complete_upload),
            ]
        )
        self.app.add_routes(LessonCheckApi(sessions).routes())
        self.app.add_routes(TimetableApi(sessions).routes())
        self.app.add_routes(DashboardApi(sessions, presence_online).routes())
        self.app.add_routes(NetworkApi(sessions, presence_online).routes())
        self.app.add_routes(PatrolApi(sessions, relays, presence_online).routes())
        OPENAPI["paths"].update(PATROL_PATHS)
        self.app.add_routes(RecordingsApi(sessions).routes())
        OPENAPI["paths"].update(RECORDINGS_PATHS)
        self.app.add_routes(ClassroomsApi(sessions, presence_online).routes())
        OPENAPI["paths"].update(CLASSROOMS_PATHS)
        OPENAPI["paths"].update(UPLOAD_PATHS)
        self.app.add_routes(AgentActions(hub).routes())
        OPENAPI["paths"].update(ACTION_PATHS)
        self.app.add_routes(AuthApi(sessions).routes())
        self.app.add_routes(console_routes())
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (0 picks a free port)."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness probe."""
        return web.json_response({"ok": True})

    async def classrooms(self, request: web.Request) -> web.Response:
        """Every classroom with its enrolment, online state, agent version, hardware and
        network profile, devices and latest heartbeat (the inventory)."""
        online = set(self._online())
        with self._sessions() as db:
            rooms = db.scalars(select(Classroom).order_by(Classroom.id)).all()
            profiles = school_profiles(db)
            return web.json_response(
                [classroom_document(r, r.id in online, profiles) for r in rooms]
            )

    async def lessons(self, request: web.Request) -> web.Response:
        """Lessons, newest first."""
        with self._sessions() as db:
            rows = db.scalars(select(Lesson).order_by(Lesson.start_at.desc()).limit(500)).all()
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

    async def lesson(self, request: web.Request) -> web.Response:
        """One lesson with its events, reports and recordings."""
        with self._sessions() as db:
            try:
                storage = self.uploads.storage
                root = storage.root if isinstance(storage, LocalStorage) else None
                doc = lesson_document(db, get_lesson(db, request.match_info["lesson"]), root)
            except NotFound as err:
                return error(404, str(err))
        return web.json_response(doc)

    def _classroom(self, request: web.Request) -> str | None:
        """The classroom whose upload token the request carries (X-Classroom + bearer)."""
        classroom = request.headers.get("X-Classroom", "")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not classroom or not token or not self._keys.check_upload_token(classroom, token):
            return None
        return classroom

    async def _json(self, request: web.Request) -> object:
        try:
            return await request.json()
        except ValueError as err:
            raise InvalidRequest(f"body is not JSON: {err}") from None

    async def _guarded(
        self, request: web.Request, work: Callable[[str], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        classroom = self._classroom(request)
        if classroom is None:
            return error(401, "missing or wrong upload token (headers X-Classroom, Authorization)")
        try:
            return await work(classroom)
        except NotFound as err:
            return error(404, str(err))
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
            body = await self._json(request)
            numbers = body.get("parts") if isinstance(body, dict) else None
            if not isinstance(numbers, list):
                raise InvalidRequest('body must be {"parts": [<part number>, ...]}')
            base = f"{request.scheme}://{request.host}"
            doc = await asyncio.to_thread(
                self.uploads.part_targets,
                classroom,
                request.match_info["upload"],
                numbers,
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
            backend_id = await asyncio.to_thread(
                self.uploads.backend_id, classroom, request.match_info["upload"]
            )

            async def chunks() -> AsyncIterator[bytes]:
                async for chunk in request.content.iter_chunked(1 << 20):
                    yield chunk

            etag, size = await storage.put_part(backend_id, number, chunks())
            return web.json_response({"n": number, "bytes": size}, headers={"ETag": f'"{etag}"'})

        return await self._guarded(request, work)

    async def complete_upload(self, request: web.Request) -> web.StreamResponse:
        """Assemble the parts; storage reads the object back and checks its SHA-256."""

        async def work(classroom: str) -> web.StreamResponse:
            etags = parse_etags(await self._json(request))
            doc = await asyncio.to_thread(
                self.uploads.complete, classroom, request.match_info["upload"], etags
            )
            return web.json_response(doc, status=201)

        return await self._guarded(request, work)

    async def catalogue(self, request: web.Request) -> web.Response:
        """The lesson's recordings: classrooms, tracks, segments, coverage and gaps."""
        with self._sessions() as db:
            try:
                doc = catalogue_document(db, request.match_info["lesson"])
            except NotFound as err:
                return error(404, str(err))
        return web.json_response(doc)

    async def recording_file(self, request: web.Request) -> web.StreamResponse:
        """A stitched recording: served with byte ranges, or redirected to storage."""
        try:
            key = object_key(
                "lessons",
                request.match_info["lesson"],
                request.match_info["classroom"],
                request.match_info["file"],
            )
        except ValueError as err:
            return error(400, str(err))
        storage = self.uploads.storage
        local = storage.local_path(key)
        if local is not None:
            if not local.is_file():
                return error(404, f"{key}: no such recording")
            return web.FileResponse(local, headers={"Content-Type": "video/mp4"})
        url = await asyncio.to_thread(storage.read_url, key)
        if url is None:
            return error(404, f"{key}: no such recording")
        raise web.HTTPFound(url)

    async def deletions(self, request: web.Request) -> web.Response:
        """The audit log of deleted recordings, newest first."""
        with self._sessions() as db:
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
