"""The classroom inventory's JSON API: one classroom with its agent, hardware profile,
network profile and devices, and its health history for the console's charts.

``OPENAPI_PATHS`` is merged into the controller's OpenAPI document."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.health_history import KEEP, SAMPLE_EVERY, health_samples
from controller.agents.registry import get_classroom
from controller.common.api_common import json_content, run_db
from controller.common.errors import InvalidRequest
from controller.db.models import Classroom, School
from controller.db.session import as_utc, utcnow

DEFAULT_HOURS = 6.0
MAX_HOURS = KEEP.total_seconds() / 3600


def hours_query(value: str | None) -> float:
    """The ``hours`` query parameter: a number with 0 < hours <= a week; 6 if absent."""
    if value is None:
        return DEFAULT_HOURS
    try:
        hours = float(value)
    except ValueError:
        hours = math.nan
    if not 0 < hours <= MAX_HOURS:  # also refuses nan
        raise InvalidRequest(
            f"query hours={value!r} must be a number of hours with 0 < hours <= "
            f"{MAX_HOURS:g} (samples are kept for a week); e.g. hours=6"
        )
    return hours


def network_profile_of(room: Classroom, school_profiles: dict[str, str | None]) -> dict[str, Any]:
    """The network profile the classroom works under by name, and where it comes from."""
    if room.network_profile:
        return {"name": room.network_profile, "from": "classroom"}
    name = school_profiles.get(room.school)
    return {"name": name, "from": "school" if name else None}


def classroom_document(
    room: Classroom, online: bool, school_profiles: dict[str, str | None]
) -> dict[str, Any]:
    """One classroom for the inventory: agent, profiles, devices, latest heartbeat."""
    health = room.health or {}
    devices = health.get("devices")
    return {
        "id": room.id,
        "name": room.name,
        "school": room.school,
        "enrolled": room.public_key is not None,
        "online": online,
        "agent_version": room.agent_version,
        "profile": room.profile_name,
        "network_profile": network_profile_of(room, school_profiles),
        "devices": devices if isinstance(devices, dict) else {},
        "inventory": room.inventory or [],
        "health": health,
        "last_seen_at": as_utc(room.last_seen_at).isoformat() if room.last_seen_at else None,
    }


def school_profiles(db: Session) -> dict[str, str | None]:
    """Each school's network profile name (None: none)."""
    return {s.id: s.network_profile for s in db.scalars(select(School)).all()}


class ClassroomsApi:
    """Routes; database work runs in a thread."""

    def __init__(self, sessions: sessionmaker[Session], online: Callable[[], list[str]]) -> None:
        self._sessions = sessions
        self._online = online

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the controller's application."""
        return [
            web.get("/api/v1/classrooms/{id}", self.show),
            web.get("/api/v1/classrooms/{id}/health", self.health),
        ]

    async def _run(self, work: Callable[[Session], web.StreamResponse]) -> web.StreamResponse:
        return await run_db(self._sessions, work)

    async def show(self, request: web.Request) -> web.StreamResponse:
        """One classroom for the inventory."""
        online = set(self._online())
        classroom = request.match_info["id"]

        def work(db: Session) -> web.StreamResponse:
            room = get_classroom(db, classroom)
            return web.json_response(
                classroom_document(room, room.id in online, school_profiles(db))
            )

        return await self._run(work)

    async def health(self, request: web.Request) -> web.StreamResponse:
        """The classroom's health samples over the last ``hours`` (default 6)."""
        classroom = request.match_info["id"]

        def work(db: Session) -> web.StreamResponse:
            hours = hours_query(request.query.get("hours"))
            get_classroom(db, classroom)
            now = utcnow()
            since = now - timedelta(hours=hours)
            return web.json_response(
                {
                    "classroom": classroom,
                    "hours": hours,
                    "since": since.isoformat(),
                    "now": now.isoformat(),
                    "every_s": int(SAMPLE_EVERY.total_seconds()),
                    "samples": health_samples(db, classroom, since),
                }
            )

        return await self._run(work)


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_NUM = {"type": ["number", "null"]}
_SAMPLE = {
    "type": "object",
    "required": ["at"],
    "properties": {
        "at": {"type": "string", "format": "date-time"},
        "cpu": {**_NUM, "description": "CPU, percent"},
        "mem": {**_NUM, "description": "memory, percent"},
        "temp": {**_NUM, "description": "temperature, °C"},
        "audio_dbfs": {**_NUM, "description": "room microphone level, dBFS"},
        "send_kbps": {**_NUM, "description": "media sent, kbps (null: no media)"},
        "rtt_ms": {**_NUM, "description": "round trip to the controller, ms"},
        "clock_offset_ms": {**_NUM, "description": "controller minus agent clock, ms"},
    },
}
_CLASSROOM = {
    "type": "object",
    "required": ["id", "name", "school", "online", "agent_version", "profile"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "school": {"type": "string"},
        "enrolled": {"type": "boolean"},
        "online": {"type": "boolean"},
        "agent_version": {"type": "string"},
        "profile": {"type": "string", "description": "hardware profile name"},
        "network_profile": {
            "type": "object",
            "properties": {
                "name": {"type": ["string", "null"]},
                "from": {"type": ["string", "null"], "enum": ["classroom", "school", None]},
            },
        },
        "devices": {"type": "object", "description": "device states, latest heartbeat"},
        "inventory": {"type": "array", "items": {"type": "object"}},
        "health": {"type": "object", "description": "the latest heartbeat"},
        "last_seen_at": {"type": ["string", "null"], "format": "date-time"},
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/classrooms": {
        "get": {
            "summary": "Classrooms with enrolment, online state and health",
            "parameters": [
                {
                    "name": "view",
                    "in": "query",
                    "required": False,
                    "description": "names: only each classroom's id, name and school; "
                    "inventory (the default): everything",
                    "schema": {"type": "string", "enum": ["inventory", "names"]},
                }
            ],
            "responses": {
                "200": {"description": "classrooms"},
                "400": {"description": "an unknown view", **json_content(_ERROR)},
            },
        }
    },
    "/api/v1/classrooms/{id}": {
        "get": {
            "summary": "One classroom: agent, hardware and network profile, devices",
            "parameters": [_ID],
            "responses": {
                "200": {"description": "the classroom", **json_content(_CLASSROOM)},
                "404": {"description": "unknown classroom", **json_content(_ERROR)},
            },
        }
    },
    "/api/v1/classrooms/{id}/health": {
        "get": {
            "summary": "The classroom's health history (one sample a minute, kept a week)",
            "parameters": [
                _ID,
                {
                    "name": "hours",
                    "in": "query",
                    "required": False,
                    "description": "how far back; default 6",
                    "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_HOURS},
                },
            ],
            "responses": {
                "200": {
                    "description": "samples, oldest first",
                    **json_content(
                        {
                            "type": "object",
                            "properties": {
                                "classroom": {"type": "string"},
                                "hours": {"type": "number"},
                                "since": {"type": "string", "format": "date-time"},
                                "now": {"type": "string", "format": "date-time"},
                                "every_s": {"type": "integer"},
                                "samples": {"type": "array", "items": _SAMPLE},
                            },
                        }
                    ),
                },
                "400": {"description": "bad hours", **json_content(_ERROR)},
                "404": {"description": "unknown classroom", **json_content(_ERROR)},
            },
        }
    },
}
