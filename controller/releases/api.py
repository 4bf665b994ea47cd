"""Staged agent update routes.

For the console (admins change, staff read):

- ``GET  /api/v1/releases``: releases, ring assignments, the latest rollouts and each
  classroom's progress;
- ``PUT  /api/v1/releases/rings``: ``{"scope": "school"|"classroom", "id": ..., "ring":
  "pilot"|"early"|"general"|""}``;
- ``POST /api/v1/releases/rollouts``: ``{"version", "window_start", "window_end",
  "timezone", "health_deadline_s"}`` starts a rollout;
- ``POST /api/v1/releases/rollouts/{rollout}/pause`` / ``resume`` / ``cancel``.

For agents (``X-Classroom`` and the classroom's upload token, as uploads):
``protocols.releases.OFFER_ROUTE``, ``WHEEL_ROUTE`` and ``REPORT_ROUTE``.

Releases are added with the CLI only (``classroom-controller release add``): a wheel is
larger than any body this API takes. Bodies are capped at 16 KiB.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import principal_of
from controller.common.api_common import error, json_content, run_db
from controller.common.body_fields import InvalidRequestField
from controller.common.errors import InvalidRequest
from controller.recordings import upload_tokens
from controller.releases import store
from controller.releases.planner import Window
from protocols.releases import OFFER_ROUTE, REPORT_ROUTE, WHEEL_ROUTE, UpdateReport

STATUS = "/api/v1/releases"
RINGS_ROUTE = "/api/v1/releases/rings"
ROLLOUTS = "/api/v1/releases/rollouts"
ROLLOUT_ACTION = "/api/v1/releases/rollouts/{rollout}/{action}"
MAX_BODY_BYTES = 16 * 1024
DEFAULT_WINDOW = ("22:00", "06:00")
DEFAULT_HEALTH_DEADLINE_S = 600


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    """The JSON object body, or the refusal to send back (413 over the cap, 400 else)."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except ValueError as err:
        return error(400, f"body is not JSON ({err})")
    if not isinstance(body, dict):
        return error(400, "body must be a JSON object")
    return body


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {', '.join(unknown)}; send {', '.join(sorted(allowed))}"
        )


def _text(body: dict[str, Any], name: str, default: str | None, what: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise InvalidRequestField(name, value, what)
    return value


def window_from(body: dict[str, Any]) -> Window:
    """The maintenance window a rollout body names (defaults: 22:00–06:00 Asia/Shanghai)."""
    start = _text(body, "window_start", DEFAULT_WINDOW[0], "HH:MM, local time")
    end = _text(body, "window_end", DEFAULT_WINDOW[1], "HH:MM, local time")
    tz = _text(body, "timezone", "Asia/Shanghai", "an IANA time zone such as Asia/Shanghai")
    try:
        return Window(start, end, tz)
    except ValueError as err:
        raise InvalidRequest(str(err)) from None


class ReleasesApi:
    """The routes; database work runs in a worker thread."""

    def __init__(self, sessions: sessionmaker[Session], online: Callable[[], list[str]]) -> None:
        self._sessions = sessions
        self._online = online

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes."""
        return [
            web.get(STATUS, self.status),
            web.put(RINGS_ROUTE, self.set_ring),
            web.post(ROLLOUTS, self.start),
            web.post(ROLLOUT_ACTION, self.act),
            web.get(OFFER_ROUTE, self.offer),
            web.get(WHEEL_ROUTE, self.wheel),
            web.post(REPORT_ROUTE, self.report),
        ]

    async def status(self, request: web.Request) -> web.StreamResponse:
        """Releases, rings and rollouts."""
        return await run_db(self._sessions, lambda db: web.json_response(store.status(db)))

    async def set_ring(self, request: web.Request) -> web.StreamResponse:
        """Put a school or a classroom in a ring."""
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        by = principal_of(request).username

        def work(db: Session) -> web.StreamResponse:
            _only(body, {"scope", "id", "ring"})
            scope = _text(body, "scope", None, "'school' or 'classroom'")
            scope_id = _text(body, "id", None, "the school's name or the classroom's id")
            ring = _text(body, "ring", None, "pilot, early, general, or '' to remove")
            store.set_ring(db, scope, scope_id, ring, by)
            return web.json_response({"scope": scope, "id": scope_id, "ring": ring})

        return await run_db(self._sessions, work)

    async def start(self, request: web.Request) -> web.StreamResponse:
        """Start a rollout."""
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        by = principal_of(request).username

        def work(db: Session) -> web.StreamResponse:
            _only(body, {"version", "window_start", "window_end", "timezone", "health_deadline_s"})
            version = _text(body, "version", None, "a release's version (see GET /api/v1/releases)")
            deadline = body.get("health_deadline_s", DEFAULT_HEALTH_DEADLINE_S)
            if isinstance(deadline, bool) or not isinstance(deadline, int):
                raise InvalidRequestField("health_deadline_s", deadline, "seconds, 10..86400")
            row = store.start_rollout(db, version, window_from(body), deadline, by)
            return web.json_response(
                {"id": row.id, "version": row.version, "ring": row.ring}, status=201
            )

        return await run_db(self._sessions, work)

    async def act(self, request: web.Request) -> web.StreamResponse:
        """Pause, resume or cancel a rollout."""
        action, raw = request.match_info["action"], request.match_info["rollout"]
        if not raw.isdigit() or len(raw) > 9:  # beyond any id the database holds
            return error(404, f"no rollout {raw!r}")
        by = principal_of(request).username

        def work(db: Session) -> web.StreamResponse:
            if action == "pause":
                row = store.pause(db, int(raw), f"paused by {by}")
            elif action == "resume":
                row = store.resume(db, int(raw))
            elif action == "cancel":
                row = store.cancel(db, int(raw))
            else:
                return error(404, f"no action {action!r}: use pause, resume or cancel")
            return web.json_response({"id": row.id, "state": row.state})

        return await run_db(self._sessions, work)

    async def _agent(self, request: web.Request) -> str | None:
        classroom = request.headers.get("X-Classroom", "")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not classroom or not token:
            return None

        def work() -> bool:
            with self._sessions() as db:
                return upload_tokens.check(db, classroom, token)

        return classroom if await asyncio.to_thread(work) else None

    async def offer(self, request: web.Request) -> web.StreamResponse:
        """The release this agent should install now (204: none)."""
        classroom = await self._agent(request)
        if classroom is None:
            return error(401, "missing or wrong upload token (headers X-Classroom, Authorization)")
        online = self._online()

        def work(db: Session) -> web.StreamResponse:
            offer = store.offer_for(db, classroom, online)
            if offer is None:
                return web.Response(status=204)
            return web.json_response(offer.model_dump(mode="json"))

        return await run_db(self._sessions, work)

    async def wheel(self, request: web.Request) -> web.StreamResponse:
        """The wheel of a release offered to this agent."""
        classroom = await self._agent(request)
        if classroom is None:
            return error(401, "missing or wrong upload token (headers X-Classroom, Authorization)")
        version = request.match_info["version"]

        def work(db: Session) -> web.StreamResponse:
            release = store.wheel_for(db, classroom, version)
            return web.Response(
                body=release.wheel,
                content_type="application/octet-stream",
                headers={"Content-Disposition": f'attachment; filename="{release.filename}"'},
            )

        return await run_db(self._sessions, work)

    async def report(self, request: web.Request) -> web.StreamResponse:
        """An agent's progress on its offered release."""
        classroom = await self._agent(request)
        if classroom is None:
            return error(401, "missing or wrong upload token (headers X-Classroom, Authorization)")
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        try:
            report = UpdateReport.model_validate(body)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()
            )
            return error(400, f"bad update report: {problems}")

        def work(db: Session) -> web.StreamResponse:
            store.record_report(db, classroom, report)
            return web.json_response({"ok": True})

        return await run_db(self._sessions, work)


_AGENT: list[dict[str, list[str]]] = [{"uploadToken": []}]
_ROLLOUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version"],
    "properties": {
        "version": {"type": "string"},
        "window_start": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "window_end": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "timezone": {"type": "string"},
        "health_deadline_s": {"type": "integer", "minimum": 10, "maximum": 86400},
    },
    "additionalProperties": False,
}
_RING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["scope", "id", "ring"],
    "properties": {
        "scope": {"type": "string", "enum": ["school", "classroom"]},
        "id": {"type": "string"},
        "ring": {"type": "string", "enum": ["pilot", "early", "general", ""]},
    },
    "additionalProperties": False,
}
_COMMON = {
    "400": {"description": "a bad field, named, with what is valid"},
    "401": {"description": "not signed in"},
    "403": {"description": "only an administrator may"},
    "404": {"description": "no such release, rollout or classroom"},
}
OPENAPI_PATHS: dict[str, Any] = {
    STATUS: {
        "get": {
            "summary": "Agent releases, update rings and rollouts with each classroom's progress",
            "responses": {"200": {"description": "releases, rings, rollouts"}},
        }
    },
    RINGS_ROUTE: {
        "put": {
            "summary": "Put a school or a classroom in an update ring",
            "requestBody": {"required": True, **json_content(_RING_SCHEMA)},
            "responses": {"200": {"description": "the assignment"}, **_COMMON},
        }
    },
    ROLLOUTS: {
        "post": {
            "summary": "Roll a release out ring by ring inside a maintenance window",
            "requestBody": {"required": True, **json_content(_ROLLOUT_SCHEMA)},
            "responses": {"201": {"description": "the rollout"}, **_COMMON},
        }
    },
    ROLLOUT_ACTION: {
        "post": {
            "summary": "Pause, resume or cancel a rollout",
            "parameters": [
                {"name": "rollout", "in": "path", "required": True, "schema": {"type": "integer"}},
                {
                    "name": "action",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": ["pause", "resume", "cancel"]},
                },
            ],
            "responses": {"200": {"description": "the rollout's state"}, **_COMMON},
        }
    },
    OFFER_ROUTE: {
        "get": {
            "summary": "Agents only: the release to install now",
            "security": _AGENT,
            "responses": {
                "200": {"description": "an UpdateOffer (protocols.releases)"},
                "204": {"description": "nothing to install now"},
                "401": {"description": "missing or wrong upload token"},
            },
        }
    },
    WHEEL_ROUTE: {
        "get": {
            "summary": "Agents only: the wheel of a release offered to the classroom",
            "security": _AGENT,
            "parameters": [
                {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "the wheel"},
                "401": {"description": "missing or wrong upload token"},
                "404": {"description": "not offered to this classroom"},
            },
        }
    },
    REPORT_ROUTE: {
        "post": {
            "summary": "Agents only: progress on an offered release",
            "security": _AGENT,
            "requestBody": {"required": True, **json_content({"type": "object"})},
            "responses": {
                "200": {"description": "recorded"},
                "400": {"description": "a bad report"},
                "401": {"description": "missing or wrong upload token"},
                "404": {"description": "the classroom is not in that rollout"},
            },
        }
    },
}
