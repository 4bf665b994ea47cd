"""The lesson analytics route (课堂分析):

- ``GET /api/v1/lessons/{lesson}/analytics[?interval_s=30]``: the lesson's S-T figures
  (Rt, Ch, teaching type, the samples for the S-T curve, teacher and student talk time,
  each receiving room's turns and talk time) and its merged seconds, coded afresh at
  ``interval_s`` (1..600, default 30) from the timelines the agents sent.

Staff read it (teachers do not: it is not in their reads); a school's account only for
lessons one of its classrooms takes part in. No body is read (the default body limit
refuses one over 1 MiB before it is read); the answer is bounded by the longest
timeline a report may carry.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.analytics.st import DEFAULT_INTERVAL_S, MAX_INTERVAL_S, MIN_INTERVAL_S
from controller.analytics.store import analysis_document
from controller.auth.middleware import scope_of
from controller.common.api_common import json_content, run_db
from controller.common.errors import InvalidRequest
from controller.lessons.scheduling import get_lesson

ANALYTICS = "/api/v1/lessons/{lesson}/analytics"


def _interval(request: web.Request) -> int:
    raw = request.query.get("interval_s")
    if raw is None:
        return DEFAULT_INTERVAL_S
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        raise InvalidRequest(
            f"query parameter interval_s must be whole seconds from {MIN_INTERVAL_S} to "
            f"{MAX_INTERVAL_S} (the S-T method codes every 30 s); got {raw[:40]!r}"
        )
    return value


class AnalyticsApi:
    """The route; database work runs in a worker thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes."""
        return [web.get(ANALYTICS, self.show)]

    async def show(self, request: web.Request) -> web.StreamResponse:
        """A lesson's S-T analysis."""
        lesson_id, scope = request.match_info["lesson"], scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            interval_s = _interval(request)
            lesson = get_lesson(db, lesson_id)
            if not scope.sees_lesson(db, lesson.id):
                raise scope.hidden("lesson")
            return web.json_response(analysis_document(db, lesson, interval_s))

        return await run_db(self._sessions, work)


_ROOM = {
    "type": "object",
    "properties": {
        "classroom": {"type": "string"},
        "turns": {"type": "integer"},
        "talk_s": {"type": "integer"},
    },
}
_ANALYSIS = {
    "type": "object",
    "properties": {
        "lesson": {"type": "string"},
        "lead": {"type": "string"},
        "receivers": {"type": "array", "items": {"type": "string"}},
        "length_s": {"type": "integer"},
        "reported": {"type": "array", "items": {"type": "string"}},
        "seconds": {"type": "string", "description": "per second: T, S, B (both), . or ?"},
        "interval_s": {"type": "integer"},
        "samples": {"type": "string", "description": "one T or S per interval"},
        "n": {"type": "integer"},
        "n_t": {"type": "integer"},
        "rt": {"type": ["number", "null"]},
        "ch": {"type": ["number", "null"]},
        "type": {
            "type": ["string", "null"],
            "enum": ["practice", "lecture", "dialogue", "mixed", None],
        },
        "type_zh": {"type": ["string", "null"]},
        "type_en": {"type": ["string", "null"]},
        "teacher_talk_s": {"type": "integer"},
        "student_talk_s": {"type": "integer"},
        "silence_s": {"type": "integer"},
        "heard_s": {"type": "integer"},
        "rooms": {"type": "array", "items": _ROOM},
    },
}
OPENAPI_PATHS: dict[str, Any] = {
    ANALYTICS: {
        "get": {
            "summary": "A lesson's S-T analysis (课堂分析): Rt, Ch, teaching type, talk times, "
            "each receiving room's turns",
            "parameters": [
                {"name": "lesson", "in": "path", "required": True, "schema": {"type": "string"}},
                {
                    "name": "interval_s",
                    "in": "query",
                    "required": False,
                    "schema": {
                        "type": "integer",
                        "minimum": MIN_INTERVAL_S,
                        "maximum": MAX_INTERVAL_S,
                        "default": DEFAULT_INTERVAL_S,
                    },
                },
            ],
            "responses": {
                "200": {"description": "the analysis", **json_content(_ANALYSIS)},
                "400": {"description": "interval_s out of range"},
                "403": {"description": "a teacher, or another school's lesson"},
                "404": {"description": "no such lesson"},
            },
        }
    }
}
