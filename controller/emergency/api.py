"""``/api/v1/emergency``: the emergency switch (线下线上瞬时切换) from the console or a script.

``POST`` holds a school's lessons (or, from a county account, the county's) online only,
``POST …/{switch}/end`` switches back, ``GET`` lists the switches. Schedulers and admins
may; a school account only for its own school. Each call is audited by the middleware.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import principal_of, scope_of
from controller.common.api_common import error, json_content, read_capped, run_db
from controller.common.errors import InvalidRequest, OutOfScope, WrongState
from controller.common.timeparse import parse_time
from controller.db.models import EmergencySwitch
from controller.db.session import utcnow
from controller.emergency.store import (
    PublisherFactory,
    switch_document,
    switch_off,
    switch_on,
)

ROUTE = "/api/v1/emergency"
END_ROUTE = "/api/v1/emergency/{switch}/end"
MAX_BODY_BYTES = 4 * 1024
EXAMPLE = '{"school": "城关一小", "hours": 24, "reason": "大雪停课"}'


def parse_switch(raw: bytes) -> tuple[str | None, datetime | None, str]:
    """``(school, until, reason)`` from a POST body, or ``InvalidRequest`` naming the field."""
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise InvalidRequest(f"body is not JSON ({err}); send {EXAMPLE}") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"body must be a JSON object, e.g. {EXAMPLE}")
    unknown = sorted(set(body) - {"school", "until", "hours", "reason"})
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {', '.join(unknown)}; the switch takes school, until or "
            "hours, and reason"
        )
    school = body.get("school")
    if school is not None and (not isinstance(school, str) or not school.strip()):
        raise InvalidRequest("'school' must be a school's name, or null for the whole county")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500:
        raise InvalidRequest("'reason' must be a text of at most 500 characters")
    if "until" in body and "hours" in body:
        raise InvalidRequest("give 'until' or 'hours', not both (neither: until switched back)")
    until: datetime | None = None
    if body.get("until") is not None:
        if not isinstance(body["until"], str):
            raise InvalidRequest("'until' must be an ISO 8601 time, e.g. 2026-12-08T17:00+08:00")
        try:
            until = parse_time(body["until"])
        except ValueError as err:
            raise InvalidRequest(f"'until' {body['until']!r}: {err}") from None
    elif body.get("hours") is not None:
        hours = body["hours"]
        if (
            isinstance(hours, bool)
            or not isinstance(hours, int | float)
            or not 0 < hours <= 24 * 14
        ):
            raise InvalidRequest("'hours' must be a number of hours from 0 to 336 (two weeks)")
        until = utcnow() + timedelta(hours=float(hours))
    return (school.strip() if isinstance(school, str) else None), until, reason


class EmergencyApi:
    """The routes; database work runs in a worker thread."""

    def __init__(
        self, sessions: sessionmaker[Session], publisher: PublisherFactory = lambda: None
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes."""
        return [
            web.get(ROUTE, self.list),
            web.post(ROUTE, self.switch),
            web.post(END_ROUTE, self.end),
        ]

    async def list(self, request: web.Request) -> web.StreamResponse:
        """Switches holding now first, then the last ones switched back."""
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            rows = db.scalars(select(EmergencySwitch).order_by(EmergencySwitch.id.desc()).limit(50))
            docs = [
                switch_document(s) for s in rows if scope.county or s.school in (None, scope.school)
            ]
            docs.sort(key=lambda d: not d["active"])
            return web.json_response(docs)

        return await run_db(self._sessions, work)

    async def switch(self, request: web.Request) -> web.StreamResponse:
        """Hold a school's (or the county's) lessons online only."""
        raw = await read_capped(request, MAX_BODY_BYTES)
        if raw is None:
            return _too_large()
        principal, scope = principal_of(request), scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            school, until, reason = parse_switch(raw)
            if not scope.county and school != scope.school:
                raise OutOfScope(
                    "the county" if school is None else f"school {school!r}",
                    str(scope.school),
                    "switch it",
                )
            try:
                switch = switch_on(
                    db,
                    school=school,
                    until=until,
                    reason=reason,
                    by=f"console:{principal.username}",
                    publisher=self._publisher(),
                )
            except WrongState as err:
                return error(409, str(err))
            return web.json_response(switch_document(switch), status=201)

        return await run_db(self._sessions, work)

    async def end(self, request: web.Request) -> web.StreamResponse:
        """Switch back."""
        principal, scope = principal_of(request), scope_of(request)
        try:
            switch_id = int(request.match_info["switch"])
        except ValueError:
            return error(400, "the switch is named by its number, as GET /api/v1/emergency lists")

        def work(db: Session) -> web.StreamResponse:
            row = db.get(EmergencySwitch, switch_id)
            if row is not None and not scope.county and row.school != scope.school:
                raise OutOfScope(
                    f"emergency switch {switch_id} ({row.school or 'the county'})",
                    str(scope.school),
                    "switch it back",
                )
            try:
                switch = switch_off(
                    db, switch_id, f"console:{principal.username}", self._publisher()
                )
            except WrongState as err:
                return error(409, str(err))
            return web.json_response(switch_document(switch))

        return await run_db(self._sessions, work)


def _too_large() -> web.Response:
    return error(413, f"body larger than {MAX_BODY_BYTES} bytes; send {EXAMPLE}")


_SWITCH: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "school": {"type": ["string", "null"]},
        "scope": {"type": "string", "enum": ["county", "school"]},
        "starts_at": {"type": "string"},
        "until": {"type": ["string", "null"]},
        "reason": {"type": "string"},
        "set_by": {"type": "string"},
        "ended_by": {"type": ["string", "null"]},
        "ended_at": {"type": ["string", "null"]},
        "active": {"type": "boolean"},
        "lessons": {"type": "array", "items": {"type": "object"}},
    },
}
_BODY = {
    "type": "object",
    "properties": {
        "school": {"type": ["string", "null"], "description": "null: the whole county"},
        "until": {
            "type": "string",
            "description": "ISO 8601; or 'hours'; neither: until switched back",
        },
        "hours": {"type": "number", "exclusiveMinimum": 0, "maximum": 336},
        "reason": {"type": "string", "maxLength": 500},
    },
    "required": ["reason"],
    "additionalProperties": False,
}
OPENAPI_PATHS: dict[str, Any] = {
    ROUTE: {
        "get": {
            "summary": "Emergency switches (线下线上瞬时切换): those holding now first",
            "responses": {
                "200": {
                    "description": "switches",
                    **json_content({"type": "array", "items": _SWITCH}),
                }
            },
        },
        "post": {
            "summary": "Hold every lesson of a school, or the county, online only: broadcast "
            "one way and published for students at home (admin, scheduler)",
            "requestBody": {"required": True, **json_content(_BODY)},
            "responses": {
                "201": {
                    "description": "the switch, with each lesson it holds",
                    **json_content(_SWITCH),
                },
                "400": {"description": "a malformed body, naming the field"},
                "403": {"description": "the role may not, or another school"},
                "404": {"description": "no classroom belongs to that school"},
                "409": {"description": "a switch already holds that scope"},
                "413": {"description": f"body larger than {MAX_BODY_BYTES} bytes"},
            },
        },
    },
    END_ROUTE: {
        "post": {
            "summary": "Switch back: each lesson not over returns to what it was",
            "parameters": [
                {"name": "switch", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "responses": {
                "200": {"description": "the switch, ended", **json_content(_SWITCH)},
                "400": {"description": "not a switch number"},
                "403": {"description": "the role may not, or another school's switch"},
                "404": {"description": "no such switch"},
                "409": {"description": "already switched back"},
            },
        }
    },
}
