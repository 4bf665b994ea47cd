"""The timetable feature's routes and OpenAPI fragment: the timetable and its import and
export, lesson checks and scheduling, term quotas and their reports."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.common.openapi import merge
from controller.timetable.api import OPENAPI_PATHS as TIMETABLE_PATHS
from controller.timetable.api import TimetableApi
from controller.timetable.check_api import LessonCheckApi
from controller.timetable.quotas_api import OPENAPI_PATHS as TERM_QUOTAS_PATHS
from controller.timetable.quotas_api import TermQuotasApi


def add_routes(app: web.Application, sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Add the timetable feature's routes to ``app``; its OpenAPI paths."""
    app.add_routes(LessonCheckApi(sessions).routes())
    app.add_routes(TimetableApi(sessions).routes())
    app.add_routes(TermQuotasApi(sessions).routes())
    return merge(TIMETABLE_PATHS, TERM_QUOTAS_PATHS)
