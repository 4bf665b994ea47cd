"""Technicians' remote actions on a classroom PC: run doctor, pull logs, recall a PTZ
preset, restart the agent.

``POST /api/v1/classrooms/{classroom}/actions`` with ``{"action": "doctor" | "logs" |
"ptz" | "restart", "lines": n, "camera": name, "preset": name}`` sends the action over
the control channel and answers with what the agent did: ``{ok, output, data}``. Admins
and technicians may do it (``controller.auth.roles``); every call is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from controller.common.api_common import error
from protocols.envelope import Envelope
from protocols.errors import ProtocolError
from protocols.messages import ActionResult, AgentAction, Body

ACTION_TIMEOUT_S = {"doctor": 60.0, "logs": 30.0, "ptz": 20.0, "restart": 10.0}


class Requester(Protocol):
    """What the actions need from the agent hub (``controller.agents.hub.AgentHub``)."""

    async def request(self, classroom_id: str, body: Body, timeout: float) -> Envelope:
        """Send and await the agent's reply."""
        ...


class AgentActions:
    """The route and its handler."""

    def __init__(self, hub: Callable[[], Requester | None]) -> None:
        self._hub = hub

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes."""
        return [web.post("/api/v1/classrooms/{classroom}/actions", self.run)]

    async def run(self, request: web.Request) -> web.Response:
        """Run one action on the classroom's agent and return its result."""
        classroom = request.match_info["classroom"]
        try:
            body = await request.json()
        except ValueError:
            return error(400, 'body must be JSON: {"action": "doctor" | "logs" | "ptz" | ...}')
        if not isinstance(body, dict):
            return error(400, "body must be a JSON object with 'action'")
        try:
            action = AgentAction.model_validate(body)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()
            )
            return error(400, f"bad action: {problems}")
        if action.action == "ptz" and not (action.camera and action.preset):
            return error(400, "ptz needs 'camera' (a device name) and 'preset' (a preset name)")
        hub = self._hub()
        if hub is None:
            return error(503, "the controller's agent hub is not running yet; try again")
        try:
            reply = await hub.request(classroom, action, ACTION_TIMEOUT_S[action.action])
            result = reply.expect(ActionResult)
        except ConnectionError as err:
            return error(409, f"{err}; is the classroom's agent online?")
        except TimeoutError:
            return error(
                504,
                f"agent {classroom!r} did not answer {action.action!r} within "
                f"{ACTION_TIMEOUT_S[action.action]:.0f} s",
            )
        except ProtocolError as err:
            return error(502, f"agent {classroom!r} answered something else: {err}")
        return web.json_response(result.model_dump(mode="json"))


_ACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["action"],
    "properties": {
        "action": {"type": "string", "enum": ["doctor", "logs", "ptz", "restart"]},
        "lines": {"type": "integer", "minimum": 1, "maximum": 5000},
        "camera": {"type": "string"},
        "preset": {"type": "string"},
    },
    "additionalProperties": False,
}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/classrooms/{classroom}/actions": {
        "post": {
            "summary": "Run doctor, pull logs, recall a PTZ preset or restart a classroom's agent",
            "parameters": [
                {"name": "classroom", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ACTION_SCHEMA}},
            },
            "responses": {
                "200": {"description": "what the agent did: {action, ok, output, data}"},
                "400": {"description": "a bad action, with the field and what is valid"},
                "401": {"description": "not signed in"},
                "403": {"description": "the role may not run remote actions"},
                "409": {"description": "the classroom's agent is not connected"},
                "503": {"description": "the agent hub is not running yet"},
                "504": {"description": "the agent did not answer in time"},
            },
        }
    }
}
