"""``GET``/``PUT /api/v1/lessons/{lesson}/push``: a lesson's live push targets (直播推流)
and how each push is doing.

Schedulers (and admins) set them; every staff role reads them, redacted. A change while
the lesson is live reaches the lead classroom at once: the lesson watch wakes the
orchestrator, which sends the lead its new terms, and the lead's agent starts or stops
just the pushes that changed. Audited by the auth middleware like every write.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import principal_of
from controller.common.api_common import error, json_content, read_capped, run_db
from controller.common.errors import WrongState
from controller.lessons.scheduling import get_lesson
from controller.live_push.store import (
    parse_targets,
    push_document,
    push_targets,
    set_push_targets,
)
from protocols.live_push import MAX_TARGETS

ROUTE = "/api/v1/lessons/{lesson}/push"
MAX_BODY_BYTES = 8 * 1024  # four targets of 1 kB addresses, with room to spare


class LivePushApi:
    """The routes; database work runs in a worker thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes."""
        return [web.get(ROUTE, self.show), web.put(ROUTE, self.change)]

    async def show(self, request: web.Request) -> web.StreamResponse:
        """The lesson's targets (addresses redacted) and each push's state."""
        lesson_id = request.match_info["lesson"]

        def work(db: Session) -> web.StreamResponse:
            return web.json_response(push_document(db, get_lesson(db, lesson_id)))

        return await run_db(self._sessions, work)

    async def change(self, request: web.Request) -> web.StreamResponse:
        """Replace the targets: ``{"targets": [{"name": ..., "url": "rtmp://..."}]}``."""
        raw = await read_capped(request, MAX_BODY_BYTES)
        if raw is None:
            return _too_large()
        lesson_id = request.match_info["lesson"]
        principal = principal_of(request)

        def work(db: Session) -> web.StreamResponse:
            lesson = get_lesson(db, lesson_id)
            targets = parse_targets(raw, push_targets(db, lesson.id))
            try:
                set_push_targets(db, lesson, targets, f"console:{principal.username}")
            except WrongState as err:
                return error(409, str(err))
            return web.json_response(push_document(db, lesson))

        return await run_db(self._sessions, work)


def _too_large() -> web.Response:
    return error(
        413,
        f"body larger than {MAX_BODY_BYTES} bytes; send at most {MAX_TARGETS} targets, "
        'each {"name": ..., "url": "rtmp://host/app/stream-key"}',
    )


_TARGET_VIEW = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "where": {"type": "string", "description": "the push address, its stream key hidden"},
        "state": {
            "type": "string",
            "enum": ["unknown", "idle", "connecting", "live", "retrying", "stopped"],
        },
        "live_since": {"type": ["number", "null"]},
        "bytes": {"type": "integer"},
        "reconnects": {"type": "integer"},
        "last_error": {"type": "string"},
    },
}
_DOC = {
    "type": "object",
    "required": ["lesson_id", "targets"],
    "properties": {
        "lesson_id": {"type": "string"},
        "lesson_state": {"type": "string"},
        "lead": {"type": "string"},
        "targets": {"type": "array", "items": _TARGET_VIEW},
        "changed_by": {"type": "string"},
        "changeable": {"type": "boolean"},
    },
}
_CHANGE = {
    "type": "object",
    "required": ["targets"],
    "properties": {
        "targets": {
            "type": "array",
            "maxItems": MAX_TARGETS,
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 40},
                    "url": {
                        "description": "left out: keep the address stored under this name",
                        "type": "string",
                        "maxLength": 1024,
                        "pattern": r"^rtmps?://[^\s/]+/\S+$",
                    },
                },
                "additionalProperties": False,
            },
        }
    },
    "additionalProperties": False,
}
_LESSON = [{"name": "lesson", "in": "path", "required": True, "schema": {"type": "string"}}]
OPENAPI_PATHS: dict[str, Any] = {
    ROUTE: {
        "get": {
            "summary": "A lesson's live push targets (直播推流), redacted, with each push's state",
            "parameters": _LESSON,
            "responses": {
                "200": {"description": "the targets", **json_content(_DOC)},
                "404": {"description": "no such lesson"},
            },
        },
        "put": {
            "summary": "Set a lesson's live push targets (admin, scheduler); a live lesson's "
            "lead starts or stops the pushes that changed",
            "parameters": _LESSON,
            "requestBody": {"required": True, **json_content(_CHANGE)},
            "responses": {
                "200": {"description": "the targets now", **json_content(_DOC)},
                "400": {"description": "a malformed body, naming the target and field"},
                "403": {"description": "the role may not"},
                "404": {"description": "no such lesson"},
                "409": {"description": "the lesson is over"},
                "413": {"description": f"body larger than {MAX_BODY_BYTES} bytes"},
            },
        },
    }
}
