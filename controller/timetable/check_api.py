"""Checking a lesson against the scheduling rules without saving it, and moving a lesson
to another time: the console shows conflicts and the bandwidth placement before saving.

``OPENAPI_PATHS`` is merged into the controller's OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.registry import get_classroom
from controller.auth.middleware import principal_of, scope_of
from controller.auth.scope import COUNTY, Scope
from controller.common.api_common import OUT_OF_SCOPE_RESPONSE, error, json_content, run_db
from controller.common.body_fields import (
    assistants_field,
    optional_string_field,
    string_field,
    string_list_field,
)
from controller.common.errors import InvalidRequest
from controller.db.session import as_utc
from controller.lessons.scheduling import get_lesson, lesson_document, log_event
from controller.timetable.kinds import KINDS, canonical_kind
from controller.timetable.loading import candidate_of, planner_for
from controller.timetable.planner import Candidate, Placement


def _when(body: dict[str, Any], name: str) -> datetime:
    if name not in body:
        raise InvalidRequest(f"field {name!r} is required (e.g. 2026-03-02T08:00:00+08:00)")
    try:
        value = datetime.fromisoformat(str(body[name]))
    except ValueError as err:
        raise InvalidRequest(f"{name}: {err}") from None
    if value.tzinfo is None:
        raise InvalidRequest(f"{name} must carry a time zone (e.g. 2026-03-02T08:00+08:00)")
    return value


def placement_document(placement: Placement) -> dict[str, object]:
    """The rules' answer: ``ok``, every problem, and the rung it goes on and why (the rung
    is shown even when refused, so the scheduler sees what bandwidth it would take)."""
    rung = placement.rung
    return {
        "ok": not placement.problems,
        "problems": [{"code": p.code, "message": p.message} for p in placement.problems],
        "placement": {
            "rung": rung.name,
            "kbps": rung.kbps,
            "reason": placement.reason,
            "lowered": placement.lowered,
        }
        if rung is not None
        else None,
    }


def check_candidate(db: Session, body: object, scope: Scope = COUNTY) -> dict[str, object]:
    """Run the planner on a lesson as POST /api/v1/lessons takes it (plus ``lesson``: the
    id of a lesson being changed, left out of the bookings); nothing is saved.
    ``OutOfScope`` when a classroom is outside ``scope``, as creating it would be."""
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    start, end = _when(body, "start"), _when(body, "end")
    if end <= start:
        raise InvalidRequest(
            f"lesson must end after it starts (start {start.isoformat()}, end {end.isoformat()})"
        )
    if "lead" not in body:
        raise InvalidRequest("field 'lead' is required (the teaching classroom's id)")
    kind = canonical_kind(string_field(body, "kind", "synchronous"))
    if kind not in KINDS:
        raise InvalidRequest(f"kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
    lead, receivers = string_field(body, "lead"), string_list_field(body, "receivers")
    for cid in [lead, *receivers]:
        get_classroom(db, cid)
    scope.require(db, [lead, *receivers], "schedule it")
    being_changed = optional_string_field(body, "lesson")
    if being_changed and not scope.sees_lesson(db, being_changed):
        raise scope.hidden(f"lesson {being_changed!r}")
    skip = [being_changed] if being_changed else []
    candidate = Candidate(
        "this lesson",
        kind,
        lead,
        tuple(receivers),
        start,
        end,
        optional_string_field(body, "teacher"),
        string_field(body, "subject"),
        string_field(body, "title"),
        assistants=assistants_field(body),
    )
    return placement_document(planner_for(db, (start, end), skip=skip).place(candidate))


def move_lesson(
    db: Session, lesson_id: str, body: object, actor: str, scope: Scope = COUNTY
) -> web.Response:
    """Move a scheduled lesson to ``start``..``end`` if the rules allow (409 with every
    problem otherwise); the rung is placed again for the new time. ``OutOfScope`` when
    the lesson involves a classroom outside ``scope``."""
    if not isinstance(body, dict):
        raise InvalidRequest('body must be {"start": <time>, "end": <time>}')
    start, end = _when(body, "start"), _when(body, "end")
    if end <= start:
        raise InvalidRequest("a lesson must end after it starts")
    lesson = get_lesson(db, lesson_id)
    scope.require_lesson(db, lesson_id, "move it")
    if lesson.state != "scheduled":
        raise InvalidRequest(
            f"lesson {lesson_id} is {lesson.state}; only a lesson not yet started can be moved"
        )
    old = (as_utc(lesson.start_at), as_utc(lesson.end_at))
    candidate = replace(candidate_of(lesson), ref="the moved lesson", start=start, end=end)
    placement = planner_for(db, (start, end), skip=[lesson.id]).place(candidate)
    if placement.problems:
        return web.json_response(
            {
                "error": "; ".join(p.message for p in placement.problems),
                **placement_document(placement),
            },
            status=409,
        )
    lesson.start_at, lesson.end_at = start.astimezone(UTC), end.astimezone(UTC)
    lesson.rung = placement.candidate.rung
    db.commit()
    log_event(
        db,
        lesson.id,
        f"moved by {actor}: {old[0].isoformat()} → {start.astimezone(UTC).isoformat()}"
        + (f"; {placement.reason}" if placement.reason else ""),
    )
    return web.json_response(
        {**lesson_document(db, lesson), **placement_document(placement)}, status=200
    )


class LessonCheckApi:
    """Routes; database work runs in a thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the controller's application."""
        return [
            web.post("/api/v1/lessons/check", self.check),
            web.post("/api/v1/lessons/{lesson}/move", self.move),
        ]

    async def _run(self, work: Callable[[Session], web.StreamResponse]) -> web.StreamResponse:
        return await run_db(self._sessions, work)

    async def _body(self, request: web.Request) -> object:
        try:
            return await request.json()
        except ValueError as err:
            raise InvalidRequest(f"body is not JSON: {err}") from None

    async def check(self, request: web.Request) -> web.StreamResponse:
        """Every problem and the placement of a lesson, without saving it."""
        try:
            body = await self._body(request)
        except InvalidRequest as err:
            return error(400, str(err))
        scope = scope_of(request)
        return await self._run(lambda db: web.json_response(check_candidate(db, body, scope)))

    async def move(self, request: web.Request) -> web.StreamResponse:
        """Move a scheduled lesson to another time."""
        try:
            body = await self._body(request)
        except InvalidRequest as err:
            return error(400, str(err))
        actor, scope = principal_of(request).username, scope_of(request)
        lesson = request.match_info["lesson"]
        return await self._run(lambda db: move_lesson(db, lesson, body, actor, scope))


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_CHECK: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "placement": {
            "type": ["object", "null"],
            "properties": {
                "rung": {"type": "string"},
                "kbps": {"type": "integer"},
                "reason": {"type": "string"},
                "lowered": {"type": "boolean"},
            },
        },
    },
}


# The fields of a lesson in a request body (create and check share them).
LESSON_PROPERTIES: dict[str, Any] = {
    "lead": {"type": "string"},
    "receivers": {"type": "array", "items": {"type": "string"}},
    "start": {"type": "string", "format": "date-time"},
    "end": {"type": "string", "format": "date-time"},
    "kind": {"type": "string", "enum": list(KINDS)},
    "teacher": {"type": "string"},
    "subject": {"type": "string"},
    "title": {"type": "string"},
    "assistants": {
        "type": "object",
        "description": "each receiving room's assistant teacher (辅导教师): room → teacher",
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 64},
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/lessons/check": {
        "post": {
            "summary": "Check a lesson against the rules without saving it: problems and "
            "the bandwidth placement (rung and reason)",
            "requestBody": json_content(
                {
                    "type": "object",
                    "required": ["lead", "start", "end"],
                    "properties": {
                        **LESSON_PROPERTIES,
                        "lesson": {
                            "type": "string",
                            "description": "a lesson being changed: left out of the bookings",
                        },
                    },
                }
            ),
            "responses": {
                "200": {
                    "description": "the rules' answer (ok false: refused)",
                    **json_content(_CHECK),
                },
                "400": {"description": "invalid", **json_content(_ERROR)},
                "403": OUT_OF_SCOPE_RESPONSE,
                "404": {"description": "unknown classroom", **json_content(_ERROR)},
            },
        }
    },
    "/api/v1/lessons/{lesson}/move": {
        "post": {
            "summary": "Move a scheduled lesson to another time (the rules are checked)",
            "parameters": [
                {"name": "lesson", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "requestBody": json_content(
                {
                    "type": "object",
                    "required": ["start", "end"],
                    "properties": {
                        "start": {"type": "string", "format": "date-time"},
                        "end": {"type": "string", "format": "date-time"},
                    },
                }
            ),
            "responses": {
                "200": {"description": "moved, with its placement"},
                "400": {"description": "invalid or not movable", **json_content(_ERROR)},
                "403": OUT_OF_SCOPE_RESPONSE,
                "404": {"description": "unknown lesson", **json_content(_ERROR)},
                "409": {"description": "refused by the rules", **json_content(_CHECK)},
            },
        }
    },
}
