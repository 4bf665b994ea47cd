"""The JSON API of network profiles and of the live bandwidth view.

Routes sit beside the timetable's under ``/api/v1`` and, like them, are described in the
OpenAPI document (``OPENAPI_PATHS`` is merged into it).

A school-scoped account sees the county's profiles, but only its own school and
classrooms among their assignments and in the bandwidth view; it may assign a profile to
those only (others answer 404), and may not change a profile another school uses (403)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import scope_of
from controller.common.api_common import OUT_OF_SCOPE_RESPONSE, error, json_content, run_db
from controller.common.errors import InvalidRequest
from controller.db.session import utcnow
from controller.network.bandwidth import bandwidth_document, bandwidth_view
from controller.network.profiles import (
    assign_profile,
    assigned_to,
    get_profile,
    list_profiles,
    parse_profile_text,
    profile_document,
    put_profile,
)

TOML_TYPES = ("application/toml", "text/toml", "text/plain")


class NetworkApi:
    """Routes; database work runs in a thread."""

    def __init__(self, sessions: sessionmaker[Session], online: Callable[[], list[str]]) -> None:
        self._sessions = sessions
        self._online = online

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the controller's application."""
        return [
            web.get("/api/v1/network-profiles", self.index),
            web.get("/api/v1/network-profiles/{name}", self.show),
            web.put("/api/v1/network-profiles/{name}", self.put),
            web.post("/api/v1/network-profiles/{name}/assign", self.assign),
            web.get("/api/v1/bandwidth", self.bandwidth),
        ]

    async def _run(self, work: Callable[[Session], web.StreamResponse]) -> web.StreamResponse:
        return await run_db(self._sessions, work)

    async def index(self, request: web.Request) -> web.StreamResponse:
        """Every stored profile with where it is assigned (within the caller's scope)."""
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            profiles = [
                replace(
                    p,
                    schools=[s for s in p.schools if scope.sees_school(s)],
                    classrooms=scope.keep(db, p.classrooms),
                )
                for p in list_profiles(db)
            ]
            return web.json_response([p.document() for p in profiles])

        return await self._run(work)

    async def show(self, request: web.Request) -> web.StreamResponse:
        """One profile."""
        name = request.match_info["name"]
        return await self._run(
            lambda db: web.json_response(profile_document(get_profile(db, name)))
        )

    async def put(self, request: web.Request) -> web.StreamResponse:
        """Store a profile (JSON, or TOML with a TOML/plain-text content type); 400 names
        the field and value that are wrong; 403 if a school-scoped caller's change would
        reach another school's classrooms."""
        name = request.match_info["name"]
        scope = scope_of(request)
        try:
            text = (await request.read()).decode("utf-8")
        except UnicodeDecodeError as err:
            return error(400, f"body is not UTF-8 text ({err}); send the profile as UTF-8")

        def work(db: Session) -> web.StreamResponse:
            source = f"{name!r}"
            if request.content_type in TOML_TYPES:
                profile = parse_profile_text(text, source)
                doc: dict[str, Any] = profile_document(profile)
            else:
                try:
                    body = json.loads(text)
                except json.JSONDecodeError as err:
                    raise InvalidRequest(
                        f"body is not JSON ({err}); send the profile as JSON, or as TOML "
                        "with Content-Type: application/toml"
                    ) from None
                if not isinstance(body, dict):
                    raise InvalidRequest("body must be a JSON object: the network profile")
                doc = {"name": name, **body}
            if doc.get("name") != name:
                raise InvalidRequest(
                    f"the profile is named {doc.get('name')!r} but the URL says {name!r}; "
                    "make them the same"
                )
            schools, classrooms = assigned_to(db, name)
            action = f"change network profile {name!r}, which it uses"
            scope.require_schools(schools, action)
            scope.require(db, classrooms, action)
            created = put_profile(db, doc, source)
            return web.json_response(
                profile_document(get_profile(db, name)), status=201 if created else 200
            )

        return await self._run(work)

    async def assign(self, request: web.Request) -> web.StreamResponse:
        """Assign the profile to ``{"school": S}`` or ``{"classroom": C}`` (404 for one
        outside the caller's scope, as for an unknown one)."""
        name = request.match_info["name"]
        scope = scope_of(request)
        try:
            body = await request.json()
        except ValueError as err:
            return error(400, f"body is not JSON: {err}")

        def work(db: Session) -> web.StreamResponse:
            if not isinstance(body, dict):
                raise InvalidRequest('body must be {"school": S} or {"classroom": C}')
            school, classroom = body.get("school"), body.get("classroom")
            school = str(school) if school is not None else None
            classroom = str(classroom) if classroom is not None else None
            if school is not None and not scope.sees_school(school):
                raise scope.hidden(f"school {school!r}")
            if classroom is not None and not scope.sees_classroom(db, classroom):
                raise scope.hidden(f"classroom {classroom!r}")
            done = assign_profile(db, name, school, classroom)
            return web.json_response({"ok": True, "message": done})

        return await self._run(work)

    async def bandwidth(self, request: web.Request) -> web.StreamResponse:
        """Per school (the caller's, if scoped): uplink, planned kbps of the lessons under
        way, measured kbps."""
        online = set(self._online())
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            now = utcnow()
            view = [s for s in bandwidth_view(db, online, now) if scope.sees_school(s.school)]
            return web.json_response(bandwidth_document(view, now))

        return await self._run(work)


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_RUNG = {
    "type": "object",
    "required": ["name", "width", "height", "kbps"],
    "properties": {
        "name": {"type": "string"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "fps": {"type": "integer"},
        "kbps": {"type": "integer"},
    },
}
_PROFILE = {
    "type": "object",
    "required": ["name", "classroom_cap_kbps", "ladder"],
    "properties": {
        "name": {"type": "string"},
        "vlan_id": {"type": ["integer", "null"], "minimum": 1, "maximum": 4094},
        "subnet": {"type": ["string", "null"], "description": "CIDR, e.g. 10.20.30.0/24"},
        "uplink_kbps": {"type": "integer", "description": "school uplink; 0: not known"},
        "classroom_cap_kbps": {"type": "integer"},
        "audio_kbps": {"type": "integer"},
        "dscp_audio": {"type": "string"},
        "dscp_video": {"type": "string"},
        "ladder": {"type": "array", "items": _RUNG, "description": "highest rung first"},
        "shaper": {"type": "boolean"},
    },
}
_FIGURES = {
    "planned_kbps": {"type": "integer"},
    "measured_kbps": {"type": "number"},
}
_BANDWIDTH = {
    "type": "object",
    "properties": {
        "at": {"type": "string", "format": "date-time"},
        "schools": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "school": {"type": "string"},
                    "uplink_kbps": {"type": "integer"},
                    **_FIGURES,
                    "classrooms": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "classroom": {"type": "string"},
                                "online": {"type": "boolean"},
                                "profile": {"type": ["string", "null"]},
                                "cap_kbps": {"type": ["integer", "null"]},
                                **_FIGURES,
                                "lessons": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/network-profiles": {
        "get": {
            "summary": "Network profiles with the schools and classrooms they are assigned to",
            "responses": {"200": {"description": "profiles"}},
        }
    },
    "/api/v1/network-profiles/{name}": {
        "get": {
            "summary": "One network profile",
            "parameters": [_NAME],
            "responses": {
                "200": {"description": "profile", **json_content(_PROFILE)},
                "404": {"description": "unknown", **json_content(_ERROR)},
            },
        },
        "put": {
            "summary": "Store a network profile (JSON, or TOML as application/toml)",
            "parameters": [_NAME],
            "requestBody": {
                "content": {
                    "application/json": {"schema": _PROFILE},
                    "application/toml": {"schema": {"type": "string"}},
                }
            },
            "responses": {
                "200": {"description": "replaced", **json_content(_PROFILE)},
                "201": {"description": "added", **json_content(_PROFILE)},
                "400": {"description": "not a valid profile", **json_content(_ERROR)},
                "403": OUT_OF_SCOPE_RESPONSE,
            },
        },
    },
    "/api/v1/network-profiles/{name}/assign": {
        "post": {
            "summary": "Assign the profile to a school or a classroom (a classroom's wins)",
            "parameters": [_NAME],
            "requestBody": json_content(
                {
                    "type": "object",
                    "properties": {"school": {"type": "string"}, "classroom": {"type": "string"}},
                }
            ),
            "responses": {
                "200": {"description": "assigned"},
                "400": {"description": "neither or both given", **json_content(_ERROR)},
                "404": {
                    "description": "unknown profile, school or classroom",
                    **json_content(_ERROR),
                },
            },
        }
    },
    "/api/v1/bandwidth": {
        "get": {
            "summary": "Per school: uplink, planned kbps of the lessons under way (at their "
            "rungs) and measured kbps from the agents' latest heartbeats",
            "responses": {"200": {"description": "bandwidth", **json_content(_BANDWIDTH)}},
        }
    },
}
