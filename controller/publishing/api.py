"""``GET``/``POST``/``DELETE /api/v1/lessons/{lesson}/publish``: an open lesson for many
viewers (公开课 / 观摩直播).

Schedulers (and admins) publish a lesson: its lead classroom pushes its programme to the
controller's HLS origin, and the answer holds a public watch link, signed and valid for
``valid_hours``, and the intranet link. Each POST signs a fresh link (a link cannot be
revoked before it expires: unpublishing the lesson stops the stream for every link).
Every staff role reads whether a lesson is published and how its push is doing. Writes
are audited by the auth middleware.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import principal_of
from controller.common.api_common import error, json_content, run_db
from controller.common.errors import InvalidRequest, WrongState
from controller.lessons.scheduling import get_lesson
from controller.publishing.links import intranet_path, public_path
from controller.publishing.origin import OriginConfig
from controller.publishing.store import publication, publish, unpublish

ROUTE = "/api/v1/lessons/{lesson}/publish"
MAX_BODY_BYTES = 1024
MAX_HOURS = 7 * 24.0  # a week: an observation event's days, not a standing link
EXAMPLE = '{"valid_hours": 4}'


def valid_hours(raw: bytes, default: float) -> float:
    """The link's validity from a POST body (empty: ``default``), or ``InvalidRequest``."""
    if not raw.strip():
        return default
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise InvalidRequest(f"body is not JSON ({err}); send {EXAMPLE} or nothing") from None
    if not isinstance(body, dict) or not set(body) <= {"valid_hours"}:
        raise InvalidRequest(f'body must be an object with at most "valid_hours": {EXAMPLE}')
    hours = body.get("valid_hours", default)
    if isinstance(hours, bool) or not isinstance(hours, int | float):
        raise InvalidRequest(f"valid_hours must be a number of hours; got {hours!r}")
    if not 0.05 <= hours <= MAX_HOURS:
        raise InvalidRequest(
            f"valid_hours {hours}: a watch link is valid 0.05 to {MAX_HOURS:g} hours (a week)"
        )
    return float(hours)


class PublishingApi:
    """The routes; ``origin`` None means this controller runs no HLS origin (409)."""

    def __init__(self, sessions: sessionmaker[Session], origin: OriginConfig | None) -> None:
        self._sessions = sessions
        self._origin = origin

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes."""
        return [
            web.get(ROUTE, self.show),
            web.post(ROUTE, self.publish),
            web.delete(ROUTE, self.unpublish),
        ]

    def _links(self, origin: OriginConfig, lesson_id: str, hours: float) -> dict[str, Any]:
        expires = int(time.time() + hours * 3600)
        return {
            "public_url": origin.viewer_base + public_path(origin.secret, lesson_id, expires),
            "expires_at": expires,
            "intranet_url": origin.lan_base + intranet_path(lesson_id),
        }

    async def show(self, request: web.Request) -> web.StreamResponse:
        """Whether the lesson is published, its push's state, and the intranet link."""
        lesson_id = request.match_info["lesson"]
        origin = self._origin

        def work(db: Session) -> web.StreamResponse:
            doc = publication(db, get_lesson(db, lesson_id))
            doc["origin"] = origin is not None
            if origin is not None and doc["published"]:
                doc["intranet_url"] = origin.lan_base + intranet_path(lesson_id)
            return web.json_response(doc)

        return await run_db(self._sessions, work)

    async def publish(self, request: web.Request) -> web.StreamResponse:
        """Publish the lesson (or keep it published) and sign a watch link."""
        origin = self._origin
        if origin is None:
            return _no_origin()
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _too_large()
        raw = await request.content.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            return _too_large()
        lesson_id = request.match_info["lesson"]
        by = f"console:{principal_of(request).username}"

        def work(db: Session) -> web.StreamResponse:
            lesson = get_lesson(db, lesson_id)
            hours = valid_hours(raw, origin.link_hours)
            try:
                publish(db, origin, lesson, by)
            except WrongState as err:
                return error(409, str(err))
            return web.json_response(
                {**publication(db, lesson), **self._links(origin, lesson.id, hours)}
            )

        return await run_db(self._sessions, work)

    async def unpublish(self, request: web.Request) -> web.StreamResponse:
        """Stop publishing: the lead stops its push, and every link stops playing."""
        lesson_id = request.match_info["lesson"]
        by = f"console:{principal_of(request).username}"

        def work(db: Session) -> web.StreamResponse:
            lesson = get_lesson(db, lesson_id)
            try:
                removed = unpublish(db, lesson, by)
            except WrongState as err:
                return error(409, str(err))
            if not removed:
                return error(404, f"lesson {lesson_id} is not published")
            return web.json_response(publication(db, lesson))

        return await run_db(self._sessions, work)


def _no_origin() -> web.Response:
    return error(
        409,
        "this controller runs no HLS origin; start it with --hls-origin HOST:PORT "
        "(nginx and libnginx-mod-rtmp installed) to publish lessons",
    )


def _too_large() -> web.Response:
    return error(413, f"body larger than {MAX_BODY_BYTES} bytes; send {EXAMPLE} or nothing")


_DOC = {
    "type": "object",
    "required": ["lesson_id", "published"],
    "properties": {
        "lesson_id": {"type": "string"},
        "lesson_state": {"type": "string"},
        "published": {"type": "boolean"},
        "push": {"type": ["object", "null"], "description": "the lead's push to the origin"},
        "changeable": {"type": "boolean"},
        "origin": {"type": "boolean"},
        "public_url": {"type": "string", "description": "signed watch link (POST only)"},
        "expires_at": {"type": "integer", "description": "Unix seconds"},
        "intranet_url": {"type": "string"},
    },
}
_LESSON = [{"name": "lesson", "in": "path", "required": True, "schema": {"type": "string"}}]
OPENAPI_PATHS: dict[str, Any] = {
    ROUTE: {
        "get": {
            "summary": "Whether a lesson is published as HLS, and how its push is doing",
            "parameters": _LESSON,
            "responses": {
                "200": {"description": "the state", **json_content(_DOC)},
                "404": {"description": "no such lesson"},
            },
        },
        "post": {
            "summary": "Publish a lesson as HLS (admin, scheduler) and sign a watch link",
            "parameters": _LESSON,
            "requestBody": {
                "required": False,
                **json_content(
                    {
                        "type": "object",
                        "properties": {
                            "valid_hours": {"type": "number", "minimum": 0.05, "maximum": MAX_HOURS}
                        },
                        "additionalProperties": False,
                    }
                ),
            },
            "responses": {
                "200": {"description": "published; the links", **json_content(_DOC)},
                "400": {"description": "a malformed body, or no room for another push"},
                "403": {"description": "the role may not"},
                "404": {"description": "no such lesson"},
                "409": {"description": "the lesson is over, or this controller runs no origin"},
                "413": {"description": f"body larger than {MAX_BODY_BYTES} bytes"},
            },
        },
        "delete": {
            "summary": "Stop publishing a lesson (admin, scheduler)",
            "parameters": _LESSON,
            "responses": {
                "200": {"description": "unpublished", **json_content(_DOC)},
                "404": {"description": "no such lesson, or not published"},
                "409": {"description": "the lesson is over"},
            },
        },
    }
}
