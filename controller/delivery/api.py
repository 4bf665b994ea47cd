"""Delivery lessons on demand (专递课堂 by video): the routes.

- ``POST /api/v1/library/items/{item}/deliveries``: ``{"classroom": id, "start": iso,
  "end": iso (optional)}``: schedule the room to play the approved item (admin,
  scheduler; a school's account only its own classrooms). 201 with the lesson and its
  playback.
- ``GET /api/v1/lessons/{lesson}/playback``: what a lesson plays and how much it played
  (staff, within their scope).
- ``GET /api/v1/agent/playback/{lesson}``: the playing room's agent fetches the item
  (``X-Classroom`` and its upload token, as uploads): the file, or a redirect to storage's
  signed URL. Each fetch is written to the audit log as ``playback_fetch``: the file shows
  children.

Bodies are capped at 4 KiB; changes are audited by the auth middleware.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth import audit
from controller.auth.middleware import principal_of, scope_of
from controller.common.api_common import error, json_content, read_capped, run_db
from controller.common.errors import InvalidRequest, NotFound, RulesRefused, WrongState
from controller.common.timeparse import parse_time
from controller.db.models import Lesson, LibraryItem
from controller.delivery import store
from controller.library import store as library
from controller.recordings import upload_tokens
from controller.storage.backend import StorageBackend

ASSIGN = "/api/v1/library/items/{item}/deliveries"
STATUS = "/api/v1/lessons/{lesson}/playback"
MAX_BODY_BYTES = 4 * 1024


def _time(body: dict[str, Any], name: str, required: bool) -> datetime | None:
    raw = body.get(name)
    if raw is None and not required:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidRequest(f"'{name}' must be a time such as 2026-03-02T08:00+08:00")
    try:
        return parse_time(raw)
    except ValueError as err:
        raise InvalidRequest(f"'{name}': {err}") from None


class DeliveryApi:
    """Routes of delivery lessons on demand; database work in a worker thread."""

    def __init__(self, sessions: sessionmaker[Session], storage: StorageBackend) -> None:
        self._sessions = sessions
        self._storage = storage

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the controller's application."""
        return [
            web.post(ASSIGN, self.assign),
            web.get(STATUS, self.status),
            web.get(store.MEDIA_ROUTE, self.fetch),
        ]

    async def assign(self, request: web.Request) -> web.StreamResponse:
        """Schedule a room to play an approved library item."""
        raw = await read_capped(request, MAX_BODY_BYTES)
        if raw is None:
            return error(413, f"body over {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return error(400, 'body must be JSON: {"classroom": id, "start": time, "end"?: time}')
        if not isinstance(body, dict):
            return error(400, 'body must be {"classroom": id, "start": time, "end"?: time}')
        unknown = sorted(set(body) - {"classroom", "start", "end"})
        if unknown:
            return error(400, f"unknown field(s) {', '.join(unknown)}; send classroom, start, end")
        try:
            item_id = int(request.match_info["item"])
        except ValueError:
            return error(404, f"library item {request.match_info['item']!r} does not exist")
        classroom = body.get("classroom")
        if not isinstance(classroom, str) or not classroom:
            return error(400, "'classroom' must name the room that plays the item")
        scope, actor = scope_of(request), principal_of(request).username

        def work(db: Session) -> web.StreamResponse:
            if not scope.keep(db, [classroom]):
                return error(
                    403, f"classroom {classroom} is outside {scope.describe()}; choose one of yours"
                )
            start = _time(body, "start", True)
            assert start is not None
            end = _time(body, "end", False)
            try:
                lesson, playback = store.assign(db, item_id, classroom, start, end, actor)
            except (WrongState, RulesRefused) as err:
                return error(409, str(err))
            return web.json_response(
                {
                    "lesson": {
                        "id": lesson.id,
                        "kind": lesson.kind,
                        "title": lesson.title,
                        "classroom": classroom,
                        "start_at": lesson.start_at.isoformat(),
                        "end_at": lesson.end_at.isoformat(),
                    },
                    "playback": store.playback_document(playback),
                },
                status=201,
            )

        return await run_db(self._sessions, work)

    async def status(self, request: web.Request) -> web.StreamResponse:
        """A lesson's playback: the item and how much of it played."""
        lesson_id, scope = request.match_info["lesson"], scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            lesson = db.get(Lesson, lesson_id)
            if lesson is None or not scope.keep(db, lesson.classroom_ids):
                raise NotFound(f"lesson {lesson_id!r} does not exist")
            playback = store.playback_of(db, lesson_id)
            if playback is None:
                raise NotFound(f"lesson {lesson_id} plays no library item (it is a live lesson)")
            return web.json_response(store.playback_document(playback))

        return await run_db(self._sessions, work)

    async def fetch(self, request: web.Request) -> web.StreamResponse:
        """The item for the agent of the room that plays it."""
        classroom = request.headers.get("X-Classroom", "")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        lesson_id = request.match_info["lesson"]

        def find() -> tuple[str, float] | str:
            with self._sessions() as db:
                if not classroom or not token or not upload_tokens.check(db, classroom, token):
                    return "401"
                lesson = db.get(Lesson, lesson_id)
                playback = store.playback_of(db, lesson_id)
                if lesson is None or playback is None or lesson.lead_classroom_id != classroom:
                    return "404"
                item = db.get(LibraryItem, playback.item_id) if playback.item_id else None
                found = library.media_key(db, item) if item is not None else None
                if found is None:
                    return "gone"
                audit.record(
                    db,
                    "playback_fetch",
                    username=f"agent:{classroom}"[:64],
                    role="agent",
                    target=request.path,
                    detail={"item": playback.item_id, "media": found[0]},
                    remote=request.remote or "",
                )
                return found

        found = await asyncio.to_thread(find)
        if found == "401":
            return error(401, "missing or wrong upload token (headers X-Classroom, Authorization)")
        if found == "404":
            return error(404, f"lesson {lesson_id} plays nothing in classroom {classroom}")
        if found == "gone" or isinstance(found, str):
            return error(404, f"lesson {lesson_id}: the item's file is no longer stored")
        key = found[0]
        local = self._storage.local_path(key)
        if local is not None:
            if not local.exists():
                return error(404, f"{key}: no longer stored")
            return web.FileResponse(local, headers={"Content-Type": "video/mp4"})
        url = await asyncio.to_thread(self._storage.read_url, key)
        if url is None:
            return error(404, f"{key}: no longer stored")
        return web.Response(status=302, headers={"Location": url})


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_PLAYBACK = {
    "type": "object",
    "properties": {
        "lesson": {"type": "string"},
        "item": {"type": ["integer", "null"]},
        "duration_s": {"type": ["number", "null"]},
        "played_s": {"type": ["number", "null"]},
        "share_played": {"type": ["number", "null"]},
        "held": {"type": "boolean", "description": f"played at least {store.HELD_SHARE:.0%}"},
        "error": {"type": "string"},
    },
}
OPENAPI_PATHS: dict[str, Any] = {
    ASSIGN: {
        "post": {
            "summary": "Schedule a room to play an approved library item (专递课堂 on demand)",
            "parameters": [
                {"name": "item", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "requestBody": json_content(
                {
                    "type": "object",
                    "required": ["classroom", "start"],
                    "properties": {
                        "classroom": {"type": "string"},
                        "start": {"type": "string", "format": "date-time"},
                        "end": {"type": "string", "format": "date-time"},
                    },
                }
            ),
            "responses": {
                "201": {"description": "scheduled"},
                "400": {"description": "a bad field, named", **json_content(_ERROR)},
                "403": {"description": "outside the caller's school", **json_content(_ERROR)},
                "404": {"description": "no such item or classroom", **json_content(_ERROR)},
                "409": {"description": "item not approved, or room busy", **json_content(_ERROR)},
                "413": {"description": "body too large", **json_content(_ERROR)},
            },
        }
    },
    STATUS: {
        "get": {
            "summary": "What a lesson plays and how much of it played",
            "parameters": [
                {"name": "lesson", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "the playback", **json_content(_PLAYBACK)},
                "404": {"description": "no such lesson, or a live one", **json_content(_ERROR)},
            },
        }
    },
    store.MEDIA_ROUTE: {
        "get": {
            "summary": "The item, for the playing room's agent (X-Classroom + upload token)",
            "parameters": [
                {"name": "lesson", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "the MP4"},
                "302": {"description": "storage's signed URL"},
                "401": {"description": "no or wrong upload token", **json_content(_ERROR)},
                "404": {"description": "nothing to play here", **json_content(_ERROR)},
            },
        }
    },
}
