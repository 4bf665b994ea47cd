"""The lessons feature's routes and OpenAPI fragment: the lesson list, one lesson with its
events, reports and recordings, and patrol (live lessons and their feeds)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import scope_of
from controller.common.api_common import json_content, run_db
from controller.common.openapi import merge
from controller.db.models import Lesson
from controller.db.session import as_utc
from controller.lessons.patrol import PatrolApi
from controller.lessons.patrol_openapi import OPENAPI_PATHS as PATROL_PATHS
from controller.lessons.scheduling import get_lesson, lesson_document
from controller.recordings.routes import rows_in_scope
from controller.storage.backend import StorageBackend
from controller.storage.local import LocalStorage

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_LESSON = {"name": "lesson", "in": "path", "required": True, "schema": {"type": "string"}}

#: The lesson list and one lesson (creating one is the timetable's POST on the same path).
LESSONS_PATHS: dict[str, Any] = {
    "/api/v1/lessons": {
        "get": {"summary": "Recent lessons", "responses": {"200": {"description": "lessons"}}}
    },
    "/api/v1/lessons/{lesson}": {
        "get": {
            "summary": "One lesson",
            "parameters": [_LESSON],
            "responses": {
                "200": {"description": "lesson"},
                "404": {"description": "unknown", **json_content(_ERROR)},
            },
        }
    },
}


class LessonsApi:
    """The lesson list and one lesson, within the caller's scope."""

    def __init__(self, sessions: sessionmaker[Session], storage: StorageBackend) -> None:
        self._sessions = sessions
        self._storage = storage

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the controller's application."""
        return [
            web.get("/api/v1/lessons", self.lessons),
            web.get("/api/v1/lessons/{lesson}", self.lesson),
        ]

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
        storage = self._storage
        root = storage.root if isinstance(storage, LocalStorage) else None
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            doc = lesson_document(db, get_lesson(db, request.match_info["lesson"]), root)
            doc["recordings"] = rows_in_scope(db, scope, doc["recordings"])
            return web.json_response(doc)

        return await run_db(self._sessions, work)


def add_routes(
    app: web.Application,
    sessions: sessionmaker[Session],
    storage: StorageBackend,
    patrol: PatrolApi,
) -> dict[str, Any]:
    """Add the lessons feature's routes to ``app``; its OpenAPI paths."""
    app.add_routes(LessonsApi(sessions, storage).routes())
    app.add_routes(patrol.routes())
    return merge(LESSONS_PATHS, PATROL_PATHS)
