"""The recordings feature's routes and OpenAPI fragment: a lesson's catalogue, its stitched
files (byte ranges, or a redirect to storage), the deletion audit, the agents' uploads, and
the recordings page (search, publish)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import scope_of
from controller.auth.scope import Scope
from controller.auth.viewing import VIEW_DETAIL
from controller.common.api_common import error, run_db
from controller.common.openapi import merge
from controller.db.models import Deletion, Recording
from controller.db.session import as_utc
from controller.recordings.api import OPENAPI_PATHS as RECORDINGS_PATHS
from controller.recordings.api import RecordingsApi
from controller.recordings.intake import catalogue_document
from controller.recordings.uploads_api import UploadsApi
from controller.recordings.uploads_openapi import OPENAPI_PATHS as UPLOAD_PATHS
from controller.storage.backend import StorageBackend, object_key

# The media type of a stitched track file (fragmented MP4) by the catalogue's kind.
MEDIA_TYPES = {"video": "video/mp4", "audio": "audio/mp4"}


class RecordingFilesApi:
    """A lesson's catalogue and stitched files, and the deletion audit."""

    def __init__(self, sessions: sessionmaker[Session], storage: StorageBackend) -> None:
        self._sessions = sessions
        self._storage = storage

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the controller's application."""
        return [
            web.get("/api/v1/lessons/{lesson}/recordings", self.catalogue),
            web.get("/api/v1/recordings/{lesson}/{classroom}/{file}", self.recording_file),
            web.get("/api/v1/deletions", self.deletions),
        ]

    async def catalogue(self, request: web.Request) -> web.StreamResponse:
        """The lesson's recordings: classrooms, tracks, segments, coverage and gaps."""
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            doc = catalogue_document(db, request.match_info["lesson"])
            doc["classrooms"] = rows_in_scope(db, scope, doc["classrooms"])
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
        storage = self._storage
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


def add_routes(
    app: web.Application, sessions: sessionmaker[Session], uploads: UploadsApi
) -> dict[str, Any]:
    """Add the recordings feature's routes to ``app``; its OpenAPI paths."""
    app.add_routes(RecordingFilesApi(sessions, uploads.uploads.storage).routes())
    app.add_routes(uploads.routes())
    app.add_routes(RecordingsApi(sessions).routes())
    return merge(RECORDINGS_PATHS, UPLOAD_PATHS)


def rows_in_scope(db: Session, scope: Scope, rows: Any) -> Any:
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
