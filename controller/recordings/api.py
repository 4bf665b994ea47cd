"""Routes of the recordings page: search the catalogue (within the caller's school scope),
publish a recording to the resource library. Playback itself is ``GET
/api/v1/recordings/{lesson}/{classroom}/{file}`` (byte ranges) in
``controller.recordings.routes``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import PRINCIPAL, scope_of
from controller.common.api_common import error, json_content, run_db
from controller.common.errors import InvalidRequest
from controller.recordings.search import MAX_LIMIT, RecordingQuery, publish, search


class RecordingsApi:
    """Search and publish; database work runs in a thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the controller's application."""
        return [
            web.get("/api/v1/recordings", self.search),
            web.post("/api/v1/recordings/{lesson}/{classroom}/{track}/publish", self.publish),
        ]

    async def _run(self, work: Callable[[Session], dict[str, Any]]) -> web.StreamResponse:
        return await run_db(self._sessions, lambda db: web.json_response(work(db)))

    async def search(self, request: web.Request) -> web.StreamResponse:
        """Recordings matching the query's filters, one page, newest lesson first."""
        try:
            query = RecordingQuery.parse(request.query)
        except InvalidRequest as err:
            return error(400, str(err))
        school = scope_of(request).school
        return await self._run(lambda db: search(db, query, school))

    async def publish(self, request: web.Request) -> web.StreamResponse:
        """Ask to publish one track's recording to the resource library with the lesson's
        metadata (admin, scheduler); a reviewer approves it (``controller.library``)."""
        m = request.match_info
        principal = request.get(PRINCIPAL)
        actor = principal.username if principal is not None else ""
        return await self._run(
            lambda db: publish(db, m["lesson"], m["classroom"], m["track"], actor)
        )


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _p(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_ROW = {
    "type": "object",
    "properties": {
        "lesson": _STR,
        "title": _STR,
        "kind": _STR,
        "subject": _STR,
        "teacher": _NSTR,
        "start_at": {"type": "string", "format": "date-time"},
        "end_at": {"type": "string", "format": "date-time"},
        "classroom": _STR,
        "classroom_name": _STR,
        "school": _STR,
        "track": {"type": "string", "description": "track key (file name stem)"},
        "media": {"type": "string", "enum": ["video", "audio"]},
        "duration_s": {"type": "number"},
        "coverage_pct": {
            "type": ["number", "null"],
            "description": "share of the scheduled time this track has media for (0-100)",
        },
        "gaps": {"type": ["integer", "null"], "description": "number of gaps in coverage"},
        "url": {"type": "string", "description": "playback and download (byte ranges)"},
        "published": {"type": "boolean"},
        "published_at": {"type": ["string", "null"], "format": "date-time"},
        "library_pending": {
            "type": "boolean",
            "description": "asked for the resource library, awaiting review",
        },
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/lessons/{lesson}/recordings": {
        "get": {
            "summary": "Recording catalogue with coverage",
            "parameters": [_p("lesson")],
            "responses": {
                "200": {"description": "catalogue"},
                "404": {"description": "unknown", **json_content(_ERROR)},
            },
        }
    },
    "/api/v1/deletions": {
        "get": {
            "summary": "Audit of deleted recordings",
            "responses": {"200": {"description": "deletions"}},
        }
    },
    "/api/v1/recordings": {
        "get": {
            "summary": "Search recordings by school, teacher, subject, kind and dates",
            "description": "One row per stitched track file, newest lesson first. Gaps "
            "and their reasons are in GET /api/v1/lessons/{lesson}/recordings.",
            "parameters": [
                _q("school", _STR, "the recording classroom's school (exact)"),
                _q("teacher", _STR, "the lesson's teacher id (exact)"),
                _q("subject", _STR, "the lesson's subject (exact)"),
                _q("kind", _STR, "the lesson's kind (exact)"),
                _q(
                    "from",
                    _STR,
                    "lessons starting at or after: ISO time, or a date (UTC midnight)",
                ),
                _q("to", _STR, "lessons starting before: ISO time, or a date (included)"),
                _q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "page size"),
                _q("offset", {"type": "integer", "minimum": 0}, "rows to skip"),
            ],
            "responses": {
                "200": {
                    "description": "one page",
                    **json_content(
                        {
                            "type": "object",
                            "properties": {
                                "total": {"type": "integer"},
                                "limit": {"type": "integer"},
                                "offset": {"type": "integer"},
                                "recordings": {"type": "array", "items": _ROW},
                            },
                        }
                    ),
                },
                "400": {"description": "bad query", **json_content(_ERROR)},
            },
        }
    },
    "/api/v1/recordings/{lesson}/{classroom}/{track}/publish": {
        "post": {
            "summary": "Ask to publish a recording to the resource library (admin, scheduler)",
            "description": "The lesson's title, subject and teacher and the classroom's "
            "school become the item's metadata; POST /api/v1/library/items takes them "
            "given. The item is pending until reviewed. Idempotent; audited. The track is "
            "the file stem, without .mp4.",
            "parameters": [_p("lesson"), _p("classroom"), _p("track")],
            "responses": {
                "200": {"description": "the library item, pending or already approved"},
                "403": {"description": "role may not publish", **json_content(_ERROR)},
                "404": {"description": "no such recording", **json_content(_ERROR)},
            },
        }
    },
    "/api/v1/recordings/{lesson}/{classroom}/{file}": {
        "get": {
            "summary": "Play or download a stitched recording the catalogue lists (byte ranges)",
            "description": "Only the stitched track files of GET /api/v1/lessons/{lesson}/"
            "recordings are served, as video/mp4 or audio/mp4; every read is audited "
            "(one row per viewer and file per 5 minutes, with bytes and seconds served).",
            "parameters": [_p("lesson"), _p("classroom"), _p("file")],
            "responses": {
                "200": {
                    "description": "the file",
                    "content": {"video/mp4": {}, "audio/mp4": {}},
                },
                "206": {
                    "description": "a byte range",
                    "content": {"video/mp4": {}, "audio/mp4": {}},
                },
                "302": {"description": "redirect to the storage's signed URL"},
                "400": {"description": "not a valid storage name", **json_content(_ERROR)},
                "404": {"description": "no such recording", **json_content(_ERROR)},
            },
        }
    },
}
