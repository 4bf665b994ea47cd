"""The console dashboard's JSON API: lessons live now and next today, agents online and
offline, and the alerts raised from heartbeats, which may be acknowledged or silenced.

``OPENAPI_PATHS`` is merged into the controller's OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.alerts import acknowledge, active_alerts, silence
from controller.auth.middleware import principal_of, scope_of
from controller.auth.roles import allowed
from controller.common.api_common import error, json_content, run_db
from controller.db.models import Classroom, Lesson
from controller.db.session import as_utc, utcnow
from controller.lessons.states import ACTIVE_STATES
from controller.notify.store import channel_status

ACK_ROUTE = "/api/v1/alerts/{alert}/ack"
SILENCE_ROUTE = "/api/v1/alerts/{alert}/silence"
NEXT_LIMIT = 20


def _lesson(x: Lesson, names: dict[str, str]) -> dict[str, object]:
    return {
        "id": x.id,
        "kind": x.kind,
        "title": x.title,
        "subject": x.subject,
        "teacher": x.teacher_id,
        "state": x.state,
        "rung": x.rung,
        "lead": x.lead_classroom_id,
        "lead_name": names.get(x.lead_classroom_id, x.lead_classroom_id),
        "receivers": [r.classroom_id for r in x.receivers],
        "start_at": as_utc(x.start_at).isoformat(),
        "end_at": as_utc(x.end_at).isoformat(),
    }


def dashboard_document(db: Session, online: set[str], now: datetime) -> dict[str, object]:
    """Everything the dashboard shows, in one document."""
    # Only the columns shown: whole rows would decode every classroom's health and
    # inventory documents, which the dashboard never reads.
    rooms = db.execute(
        select(Classroom.id, Classroom.name, Classroom.school, Classroom.last_seen_at).order_by(
            Classroom.id
        )
    ).all()
    names = {r.id: r.name or r.id for r in rooms}
    local_now = now.astimezone()
    end_of_day = (local_now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    active = Lesson.state.in_(ACTIVE_STATES)
    live = db.scalars(
        select(Lesson)
        .where(active, Lesson.start_at <= now, Lesson.end_at > now)
        .order_by(Lesson.start_at)
    ).all()
    upcoming = db.scalars(
        select(Lesson)
        .where(active, Lesson.start_at > now, Lesson.start_at < end_of_day)
        .order_by(Lesson.start_at)
        .limit(NEXT_LIMIT)
    ).all()
    classrooms = [
        {
            "id": r.id,
            "name": r.name,
            "school": r.school,
            "online": r.id in online,
            "last_seen_at": as_utc(r.last_seen_at).isoformat() if r.last_seen_at else None,
        }
        for r in rooms
    ]
    up = sum(1 for c in classrooms if c["online"])
    return {
        "now": now.isoformat(),
        "live": [_lesson(x, names) for x in live],
        "next": [_lesson(x, names) for x in upcoming],
        "agents": {"online": up, "offline": len(rooms) - up, "classrooms": classrooms},
        "alerts": active_alerts(db, now),
    }


def scoped_dashboard(rooms: set[str] | None, doc: dict[str, Any]) -> dict[str, Any]:
    """The dashboard of a school-scoped account: its classrooms, their lessons and alerts
    (``rooms`` None: the county, unchanged)."""
    if rooms is None:
        return doc

    def ours(lesson: dict[str, Any]) -> bool:
        return lesson["lead"] in rooms or bool(rooms.intersection(lesson["receivers"]))

    classrooms = [c for c in doc["agents"]["classrooms"] if c["id"] in rooms]
    up = sum(1 for c in classrooms if c["online"])
    return {
        **doc,
        "live": [x for x in doc["live"] if ours(x)],
        "next": [x for x in doc["next"] if ours(x)],
        "agents": {"online": up, "offline": len(classrooms) - up, "classrooms": classrooms},
        "alerts": [a for a in doc["alerts"] if a["classroom"] in rooms],
    }


class DashboardApi:
    """Routes; database work runs in a thread."""

    def __init__(self, sessions: sessionmaker[Session], online: Callable[[], list[str]]) -> None:
        self._sessions = sessions
        self._online = online

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the controller's application."""
        return [
            web.get("/api/v1/dashboard", self.dashboard),
            web.post(ACK_ROUTE, self.ack),
            web.post(SILENCE_ROUTE, self.silence),
        ]

    async def _run(self, work: Callable[[Session], web.StreamResponse]) -> web.StreamResponse:
        return await run_db(self._sessions, work)

    async def dashboard(self, request: web.Request) -> web.StreamResponse:
        """Lessons live and next, agents, alerts; ``can_act``: whether the caller may
        acknowledge and silence alerts."""
        online = set(self._online())
        role = principal_of(request).role
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            doc = scoped_dashboard(
                scope.classroom_ids(db), dashboard_document(db, online, utcnow())
            )
            doc["can_act"] = allowed(role, "POST", ACK_ROUTE)
            # Alert channels (DingTalk, WeCom, e-mail) that fail: nobody is being told.
            doc["notify"] = channel_status(db, scope)
            return web.json_response(doc)

        return await self._run(work)

    async def ack(self, request: web.Request) -> web.StreamResponse:
        """Acknowledge an alert."""
        who = principal_of(request).username
        alert = request.match_info["alert"]
        return await self._run(lambda db: web.json_response(acknowledge(db, alert, who, utcnow())))

    async def silence(self, request: web.Request) -> web.StreamResponse:
        """Silence an alert for ``hours`` (maintenance)."""
        try:
            body = await request.json()
        except ValueError as err:
            return error(400, f'body is not JSON: {err}; send {{"hours": n}}')
        hours = body.get("hours") if isinstance(body, dict) else None
        who = principal_of(request).username
        alert = request.match_info["alert"]
        return await self._run(
            lambda db: web.json_response(silence(db, alert, hours, who, utcnow()))
        )


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_ALERT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "classroom": {"type": "string"},
        "classroom_name": {"type": "string"},
        "school": {"type": "string"},
        "key": {"type": "string", "description": "kind, or kind:detail (device_lost:camera)"},
        "kind": {"type": "string"},
        "message": {"type": "string"},
        "first_seen": {"type": "string", "format": "date-time"},
        "last_seen": {"type": "string", "format": "date-time"},
        "age_s": {"type": "integer"},
        "acknowledged_by": {"type": ["string", "null"]},
        "acknowledged_at": {"type": ["string", "null"], "format": "date-time"},
        "silenced_until": {"type": ["string", "null"], "format": "date-time"},
        "silenced": {"type": "boolean"},
    },
}
_ALERT_PARAM = {"name": "alert", "in": "path", "required": True, "schema": {"type": "integer"}}


OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/dashboard": {
        "get": {
            "summary": "Lessons live and next today, agents online/offline, active alerts",
            "responses": {
                "200": {
                    "description": "the dashboard",
                    **json_content(
                        {
                            "type": "object",
                            "properties": {
                                "now": {"type": "string", "format": "date-time"},
                                "live": {"type": "array", "items": {"type": "object"}},
                                "next": {"type": "array", "items": {"type": "object"}},
                                "agents": {"type": "object"},
                                "alerts": {"type": "array", "items": _ALERT},
                                "can_act": {"type": "boolean"},
                                "notify": {
                                    "type": "object",
                                    "description": "alert channels' health (GET "
                                    "/api/v1/notify/status)",
                                },
                            },
                        }
                    ),
                }
            },
        }
    },
    ACK_ROUTE: {
        "post": {
            "summary": "Acknowledge an alert (admin, scheduler, technician)",
            "parameters": [_ALERT_PARAM],
            "responses": {
                "200": {"description": "acknowledged", **json_content(_ALERT)},
                "403": {"description": "role may not", **json_content(_ERROR)},
                "404": {"description": "unknown alert", **json_content(_ERROR)},
            },
        }
    },
    SILENCE_ROUTE: {
        "post": {
            "summary": "Silence an alert for maintenance, for N hours",
            "parameters": [_ALERT_PARAM],
            "requestBody": json_content(
                {
                    "type": "object",
                    "required": ["hours"],
                    "properties": {"hours": {"type": "number", "exclusiveMinimum": 0}},
                }
            ),
            "responses": {
                "200": {"description": "silenced", **json_content(_ALERT)},
                "400": {"description": "bad hours", **json_content(_ERROR)},
                "403": {"description": "role may not", **json_content(_ERROR)},
                "404": {"description": "unknown alert", **json_content(_ERROR)},
            },
        }
    },
}
