"""``GET``/``PUT /api/v1/lessons/{lesson}/floor``: who has the floor in a lesson, and giving
it (课堂互动). Who may give it is in ``controller.auth.roles``; a teacher only in the
lessons they teach. Every change is audited by the auth middleware, logged as a lesson
event and spread to the lesson's agents by the orchestrator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import principal_of
from controller.auth.roles import OWN_LESSONS_ONLY, allowed
from controller.auth.web_sessions import Principal
from controller.common.api_common import error, json_content, run_db
from controller.common.body_fields import InvalidRequestField
from controller.common.errors import InvalidRequest, NotInLesson, WrongState
from controller.db.models import Lesson
from controller.floor.store import floor_state, receiving_rooms, room_labels, set_floor
from controller.lessons.scheduling import get_lesson
from protocols.messages import FloorState

ROUTE = "/api/v1/lessons/{lesson}/floor"
MAX_BODY_BYTES = 8 * 1024  # 64 classroom ids fit many times over


class FloorSpreader(Protocol):
    """What the API needs from the orchestrator
    (``controller.lessons.orchestrator.Orchestrator``)."""

    def floor_changed(self, state: FloorState) -> None:
        """Send the new floor to every joined classroom of its lesson."""


def floor_document(lesson: Lesson, state: FloorState, labels: dict[str, Any]) -> dict[str, Any]:
    """The JSON view of a lesson's floor, with the rooms' school and classroom names."""
    return {
        "lesson_id": lesson.id,
        "lesson_state": lesson.state,
        "seq": state.seq,
        "speaking": state.speaking,
        "muted": state.muted,
        "duck_db": state.duck_db,
        "by": state.by,
        "lead": labels[lesson.lead_classroom_id],
        "rooms": [labels[c] for c in receiving_rooms(lesson)],
    }


def _labels(db: Session, lesson: Lesson) -> dict[str, Any]:
    return {r.classroom_id: r.model_dump() for r in room_labels(db, lesson.classroom_ids)}


def parse_change(raw: bytes) -> tuple[str | None, list[str]]:
    """``(speaking, muted)`` from a PUT body, or ``InvalidRequest`` naming the problem."""
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise InvalidRequest(
            f'body is not JSON ({err}); send {{"speaking": "<classroom id>" | null, '
            '"muted": ["<classroom id>", ...]}'
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest('body must be a JSON object: {"speaking": ..., "muted": [...]}')
    unknown = sorted(set(body) - {"speaking", "muted"})
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {', '.join(unknown)}; the floor takes 'speaking' and 'muted'"
        )
    if "speaking" not in body:
        raise InvalidRequest("field 'speaking' is required: a classroom id, or null for nobody")
    speaking = body["speaking"]
    if speaking is not None and not isinstance(speaking, str):
        raise InvalidRequestField("speaking", speaking, "a classroom id (string) or null")
    muted = body.get("muted", [])
    if muted is None:
        muted = []
    if not isinstance(muted, list) or not all(isinstance(m, str) for m in muted):
        raise InvalidRequestField("muted", muted, "a list of classroom ids (strings)")
    return speaking or None, muted


class FloorApi:
    """The routes; database work runs in a worker thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        spreader: Callable[[], FloorSpreader | None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._spreader = spreader

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes."""
        return [web.get(ROUTE, self.show), web.put(ROUTE, self.change)]

    async def show(self, request: web.Request) -> web.StreamResponse:
        """The lesson's floor, its receiving rooms, and whether the caller may change it."""
        lesson_id = request.match_info["lesson"]
        principal = principal_of(request)

        def work(db: Session) -> web.StreamResponse:
            lesson = get_lesson(db, lesson_id)
            doc = floor_document(lesson, floor_state(db, lesson.id), _labels(db, lesson))
            doc["can_change"] = _may_change(principal, lesson) is None
            return web.json_response(doc)

        return await run_db(self._sessions, work)

    async def change(self, request: web.Request) -> web.StreamResponse:
        """Give the floor: ``{"speaking": id | null, "muted": [id, ...]}``."""
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _too_large()
        raw = await request.content.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            return _too_large()
        lesson_id = request.match_info["lesson"]
        principal = principal_of(request)
        changed: list[FloorState] = []

        def work(db: Session) -> web.StreamResponse:
            speaking, muted = parse_change(raw)
            lesson = get_lesson(db, lesson_id)
            refused = _may_change(principal, lesson)
            if refused is not None:
                return error(403, refused)
            try:
                state = set_floor(db, lesson_id, speaking, muted, f"console:{principal.username}")
            except WrongState as err:
                return error(409, str(err))
            except NotInLesson as err:
                return error(422, str(err))
            changed.append(state)
            return web.json_response(floor_document(lesson, state, _labels(db, lesson)))

        response = await run_db(self._sessions, work)
        spreader = self._spreader()
        if changed and spreader is not None:
            spreader.floor_changed(changed[0])
        return response


def _may_change(principal: Principal, lesson: Lesson) -> str | None:
    """None if the principal may give the floor of ``lesson``; else the 403 message."""
    if not allowed(principal.role, "PUT", ROUTE):
        return f"your role '{principal.role}' may not give the floor"
    if principal.role in OWN_LESSONS_ONLY and lesson.teacher_id != principal.username:
        return (
            f"a {principal.role} may give the floor only in the lessons they teach; lesson "
            f"{lesson.id!r} is taught by {lesson.teacher_id or 'no teacher on record'!s}, "
            f"not {principal.username!r} (a scheduler can set the lesson's teacher)"
        )
    return None


def _too_large() -> web.Response:
    return error(
        413,
        f'body larger than {MAX_BODY_BYTES} bytes; send only {{"speaking": ..., "muted": [...]}}',
    )


_ROOM = {
    "type": "object",
    "properties": {
        "classroom_id": {"type": "string"},
        "school": {"type": "string"},
        "name": {"type": "string"},
    },
}
_FLOOR = {
    "type": "object",
    "required": ["lesson_id", "seq", "speaking", "muted", "rooms"],
    "properties": {
        "lesson_id": {"type": "string"},
        "lesson_state": {"type": "string"},
        "seq": {"type": "integer", "minimum": 0},
        "speaking": {"type": ["string", "null"]},
        "muted": {"type": "array", "items": {"type": "string"}},
        "duck_db": {"type": "number"},
        "by": {"type": "string"},
        "lead": _ROOM,
        "rooms": {"type": "array", "items": _ROOM},
        "can_change": {"type": "boolean"},
    },
}
_CHANGE = {
    "type": "object",
    "required": ["speaking"],
    "properties": {
        "speaking": {"type": ["string", "null"], "description": "a receiving classroom"},
        "muted": {"type": "array", "items": {"type": "string"}, "maxItems": 64},
    },
    "additionalProperties": False,
}
_LESSON = [{"name": "lesson", "in": "path", "required": True, "schema": {"type": "string"}}]
OPENAPI_PATHS: dict[str, Any] = {
    ROUTE: {
        "get": {
            "summary": "Who has the floor in a lesson (课堂互动), with its receiving rooms",
            "parameters": _LESSON,
            "responses": {
                "200": {"description": "the floor", **json_content(_FLOOR)},
                "404": {"description": "no such lesson"},
            },
        },
        "put": {
            "summary": "Call on a receiving room, mute rooms, or release the floor "
            "(admin, scheduler, the lesson's teacher)",
            "parameters": _LESSON,
            "requestBody": {"required": True, **json_content(_CHANGE)},
            "responses": {
                "200": {"description": "the new floor (seq raised by one)", **json_content(_FLOOR)},
                "400": {"description": "a malformed body, naming the field"},
                "403": {"description": "the role may not, or the teacher does not teach it"},
                "404": {"description": "no such lesson"},
                "409": {"description": "the lesson is not preparing or live (or one-way)"},
                "413": {"description": f"body larger than {MAX_BODY_BYTES} bytes"},
                "422": {"description": "a classroom that is not a receiving room of it"},
            },
        },
    }
}
