"""The agents feature's routes and OpenAPI fragment: the classroom inventory (every
classroom with its agent, online state and health) and technicians' remote actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.actions import OPENAPI_PATHS as ACTION_PATHS
from controller.agents.actions import AgentActions, Requester
from controller.agents.classrooms_api import OPENAPI_PATHS as CLASSROOMS_PATHS
from controller.agents.classrooms_api import ClassroomsApi, classroom_document, school_profiles
from controller.auth.middleware import scope_of
from controller.common.api_common import error, run_db
from controller.common.openapi import merge
from controller.db.models import Classroom

VIEWS = ("inventory", "names")
"""The answers ``GET /api/v1/classrooms`` gives, by its ``view`` query parameter."""


class ClassroomListApi:
    """The inventory: every classroom in the caller's scope."""

    def __init__(
        self, sessions: sessionmaker[Session], presence_online: Callable[[], list[str]]
    ) -> None:
        self._sessions = sessions
        self._online = presence_online

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the controller's application."""
        return [web.get("/api/v1/classrooms", self.classrooms)]

    async def classrooms(self, request: web.Request) -> web.StreamResponse:
        """Every classroom with its enrolment, online state, agent version, hardware and
        network profile, devices and latest heartbeat (the inventory); with
        ``view=names``, only each one's id, name and school (what a picker needs)."""
        view = request.query.get("view", "inventory")
        if view not in VIEWS:
            return error(
                400,
                f"query view={view!r} is not known: use view=names (each classroom's id, "
                "name and school) or leave it out (the whole inventory)",
            )
        online = set(self._online())
        where = scope_of(request).classroom_filter()

        def names(db: Session) -> web.StreamResponse:
            # 500 classrooms' health documents are about 270 kB: a picker reads none.
            query = select(Classroom.id, Classroom.name, Classroom.school).order_by(Classroom.id)
            rows = db.execute(query if where is None else query.where(where)).all()
            return web.json_response(
                [{"id": i, "name": name, "school": school} for i, name, school in rows]
            )

        if view == "names":
            return await run_db(self._sessions, names)

        def work(db: Session) -> web.StreamResponse:
            query = select(Classroom).order_by(Classroom.id)
            rooms = db.scalars(query if where is None else query.where(where)).all()
            profiles = school_profiles(db)
            return web.json_response(
                [classroom_document(r, r.id in online, profiles) for r in rooms]
            )

        return await run_db(self._sessions, work)


def add_routes(
    app: web.Application,
    sessions: sessionmaker[Session],
    presence_online: Callable[[], list[str]],
    hub: Callable[[], Requester | None],
) -> dict[str, Any]:
    """Add the agents feature's routes to ``app``; its OpenAPI paths."""
    app.add_routes(ClassroomListApi(sessions, presence_online).routes())
    app.add_routes(ClassroomsApi(sessions, presence_online).routes())
    app.add_routes(AgentActions(hub).routes())
    return merge(CLASSROOMS_PATHS, ACTION_PATHS)
