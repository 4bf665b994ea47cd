"""The controller's HTTP API: recording uploads from agents, and lesson/classroom JSON."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Classroom, Lesson
from controller.db.session import as_utc
from controller.errors import InvalidRequest, NotFound
from controller.keys import ServerKeys
from controller.lessons import get_lesson, lesson_document
from controller.recordings import missing_segments, parse_manifest, record_segment, stitch_manifest
from controller.storage.local import ChecksumMismatch, LocalStorage

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 4 * 1024**3


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class HttpApi:
    """Routes and handlers; holds no state of its own beyond its collaborators."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        storage: LocalStorage,
        keys: ServerKeys,
        presence_online: Callable[[], list[str]],
        on_recording: Callable[[str], None],
    ) -> None:
        self._sessions = sessions
        self._storage = storage
        self._keys = keys
        self._online = presence_online
        self._on_recording = on_recording
        self.upload_errors = 0
        self.app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
        self.app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/api/v1/classrooms", self.classrooms),
                web.get("/api/v1/lessons", self.lessons),
                web.get("/api/v1/lessons/{lesson}", self.lesson),
                web.put("/api/v1/recordings/{lesson}/{classroom}/manifest.json", self.put_manifest),
                web.put("/api/v1/recordings/{lesson}/{classroom}/{track}/{name}", self.put_segment),
            ]
        )
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
        """Every classroom with its enrolment and online state."""
        online = set(self._online())
        with self._sessions() as db:
            rooms = db.scalars(select(Classroom).order_by(Classroom.id)).all()
            return web.json_response(
                [
                    {
                        "id": r.id,
                        "name": r.name,
                        "school": r.school,
                        "enrolled": r.public_key is not None,
                        "online": r.id in online,
                        "profile": r.profile_name,
                        "health": r.health,
                        "last_seen_at": as_utc(r.last_seen_at).isoformat()
                        if r.last_seen_at
                        else None,
                    }
                    for r in rooms
                ]
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
                doc = lesson_document(db, get_lesson(db, request.match_info["lesson"]))
            except NotFound as err:
                return _error(404, str(err))
        return web.json_response(doc)

    def _authorise(self, request: web.Request) -> str | None:
        classroom = request.match_info["classroom"]
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        if not token or not self._keys.check_upload_token(classroom, token):
            return None
        return classroom

    async def put_segment(self, request: web.Request) -> web.Response:
        """Store one segment; 422 if its bytes do not match the declared SHA-256."""
        classroom = self._authorise(request)
        if classroom is None:
            return _error(401, "missing or wrong upload token for this classroom")
        sha = request.headers.get("X-Content-SHA256", "")
        if len(sha) != 64:
            return _error(400, "header X-Content-SHA256 (64 hex digits) is required")
        lesson_id = request.match_info["lesson"]
        track, name = request.match_info["track"], request.match_info["name"]
        with self._sessions() as db:
            try:
                get_lesson(db, lesson_id)
            except NotFound as err:
                return _error(404, str(err))

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in request.content.iter_chunked(1 << 20):
                yield chunk

        try:
            path, size = await self._storage.put_stream(
                (lesson_id, classroom, track, name), chunks(), sha
            )
        except ChecksumMismatch as err:
            self.upload_errors += 1
            log.warning("upload rejected: %s", err)
            return _error(422, str(err))
        except ValueError as err:
            self.upload_errors += 1
            return _error(400, str(err))
        with self._sessions() as db:
            record_segment(db, lesson_id, classroom, track, name, path, sha, size)
        return web.json_response({"stored": str(path), "bytes": size, "sha256": sha}, status=201)

    async def put_manifest(self, request: web.Request) -> web.Response:
        """Accept a manifest once every segment it lists is stored; stitch the tracks."""
        classroom = self._authorise(request)
        if classroom is None:
            return _error(401, "missing or wrong upload token for this classroom")
        lesson_id = request.match_info["lesson"]
        raw = await request.read()
        with self._sessions() as db:
            try:
                get_lesson(db, lesson_id)
                manifest = parse_manifest(raw, lesson_id, classroom)
            except NotFound as err:
                return _error(404, str(err))
            except InvalidRequest as err:
                return _error(400, str(err))
            missing = missing_segments(db, manifest)
        if missing:
            return _error(
                409,
                f"storage lacks {len(missing)} segment(s) listed in the "
                f"manifest: {', '.join(missing[:10])}; upload them first",
            )
        try:
            recs = await asyncio.to_thread(self._stitch, manifest)
        except ValueError as err:
            self.upload_errors += 1
            log.exception("stitching %s/%s failed", lesson_id, classroom)
            return _error(422, f"could not stitch the recording: {err}")
        self._on_recording(lesson_id)
        return web.json_response({"recordings": recs}, status=201)

    def _stitch(self, manifest: object) -> list[dict[str, object]]:
        with self._sessions() as db:
            recs = stitch_manifest(db, self._storage, manifest)  # type: ignore[arg-type]
            return [{"track": r.track, "path": r.path, "duration_s": r.duration_s} for r in recs]
