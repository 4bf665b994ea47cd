"""Lesson review routes (评课): notes pinned to moments, scores against the rubric.

- ``GET  /api/v1/lessons/{lesson}/review``: notes, scores, mean and rubric (staff);
- ``POST /api/v1/lessons/{lesson}/notes``: ``{"at_s": s, "text": ...}`` (admin, inspector);
- ``PUT  /api/v1/lessons/{lesson}/score``: ``{"scores": {id: points}, "comment": ...}``,
  one per reviewer, replaced when given again (admin, inspector);
- ``GET/PUT /api/v1/review/rubric``: the county's rubric (changed by admin).

A school's account reviews only lessons one of its classrooms takes part in. Bodies are
capped at 16 KiB; every change is audited by the auth middleware.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import principal_of, scope_of
from controller.auth.scope import Scope
from controller.common.api_common import error, json_content, run_db
from controller.common.body_fields import InvalidRequestField
from controller.common.errors import InvalidRequest, WrongState
from controller.db.models import Lesson
from controller.lessons.scheduling import get_lesson
from controller.review.rubric import MAX_CRITERIA
from controller.review.store import (
    MAX_COMMENT_CHARS,
    MAX_NOTE_CHARS,
    add_note,
    review_document,
    rubric,
    set_rubric,
    set_score,
)

REVIEW = "/api/v1/lessons/{lesson}/review"
NOTES = "/api/v1/lessons/{lesson}/notes"
SCORE = "/api/v1/lessons/{lesson}/score"
RUBRIC = "/api/v1/review/rubric"
MAX_BODY_BYTES = 16 * 1024


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


def _visible(db: Session, scope: Scope, lesson_id: str) -> Lesson:
    lesson = get_lesson(db, lesson_id)
    if not scope.sees_lesson(db, lesson.id):
        raise scope.hidden("lesson")
    return lesson


class ReviewApi:
    """The routes; database work runs in a worker thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes."""
        return [
            web.get(REVIEW, self.show),
            web.post(NOTES, self.note),
            web.put(SCORE, self.score),
            web.get(RUBRIC, self.get_rubric),
            web.put(RUBRIC, self.put_rubric),
        ]

    async def show(self, request: web.Request) -> web.StreamResponse:
        """A lesson's notes, scores, mean score and the rubric."""
        lesson_id, scope = request.match_info["lesson"], scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            return web.json_response(review_document(db, _visible(db, scope, lesson_id)))

        return await run_db(self._sessions, work)

    async def note(self, request: web.Request) -> web.StreamResponse:
        """Pin a note to a moment of the lesson."""
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        lesson_id, scope = request.match_info["lesson"], scope_of(request)
        author = principal_of(request).username

        def work(db: Session) -> web.StreamResponse:
            unknown = sorted(set(body) - {"at_s", "text"})
            if unknown:
                raise InvalidRequest(f"unknown field(s) {', '.join(unknown)}; send at_s and text")
            at_s, text = body.get("at_s"), body.get("text")
            if isinstance(at_s, bool) or not isinstance(at_s, (int, float)):
                raise InvalidRequestField("at_s", at_s, "seconds from the lesson's start")
            if not isinstance(text, str):
                raise InvalidRequestField("text", text, "the note's text")
            lesson = _visible(db, scope, lesson_id)
            try:
                note = add_note(db, lesson, author, float(at_s), text)
            except WrongState as err:
                return error(409, str(err))
            return web.json_response(
                {"id": note.id, "at_s": note.at_s, "author": note.author, "text": note.text},
                status=201,
            )

        return await run_db(self._sessions, work)

    async def score(self, request: web.Request) -> web.StreamResponse:
        """Score the lesson against the rubric (the caller's score, replaced if given)."""
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        lesson_id, scope = request.match_info["lesson"], scope_of(request)
        author = principal_of(request).username

        def work(db: Session) -> web.StreamResponse:
            unknown = sorted(set(body) - {"scores", "comment"})
            if unknown:
                raise InvalidRequest(
                    f"unknown field(s) {', '.join(unknown)}; send scores and comment"
                )
            comment = body.get("comment", "")
            if not isinstance(comment, str):
                raise InvalidRequestField("comment", comment, "text")
            lesson = _visible(db, scope, lesson_id)
            try:
                row = set_score(db, lesson, author, body.get("scores"), comment)
            except WrongState as err:
                return error(409, str(err))
            return web.json_response(
                {
                    "author": row.author,
                    "scores": row.scores,
                    "total": row.total,
                    "out_of": row.out_of,
                    "comment": row.comment,
                }
            )

        return await run_db(self._sessions, work)

    async def get_rubric(self, request: web.Request) -> web.StreamResponse:
        """The rubric lessons are scored against."""

        def work(db: Session) -> web.StreamResponse:
            return web.json_response({"criteria": [c.document() for c in rubric(db)]})

        return await run_db(self._sessions, work)

    async def put_rubric(self, request: web.Request) -> web.StreamResponse:
        """Replace the rubric: ``{"criteria": [{id, label_zh, label_en, points}, ...]}``."""
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        by = principal_of(request).username

        def work(db: Session) -> web.StreamResponse:
            unknown = sorted(set(body) - {"criteria"})
            if unknown:
                raise InvalidRequest(f"unknown field(s) {', '.join(unknown)}; send criteria")
            criteria = set_rubric(db, body.get("criteria"), by)
            return web.json_response({"criteria": [c.document() for c in criteria]})

        return await run_db(self._sessions, work)


_LESSON = [{"name": "lesson", "in": "path", "required": True, "schema": {"type": "string"}}]
_CRITERION = {
    "type": "object",
    "required": ["id", "label_zh", "label_en", "points"],
    "properties": {
        "id": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$"},
        "label_zh": {"type": "string", "minLength": 1, "maxLength": 100},
        "label_en": {"type": "string", "minLength": 1, "maxLength": 100},
        "points": {"type": "integer", "minimum": 1, "maximum": 100},
    },
    "additionalProperties": False,
}
_RUBRIC = {
    "type": "object",
    "required": ["criteria"],
    "properties": {
        "criteria": {
            "type": "array",
            "items": _CRITERION,
            "minItems": 1,
            "maxItems": MAX_CRITERIA,
        }
    },
    "additionalProperties": False,
}
_REFUSALS = {
    "400": {"description": "a malformed body, naming the field"},
    "403": {"description": "the role may not, or the lesson is another school's"},
    "404": {"description": "no such lesson"},
    "409": {"description": "the lesson has not begun"},
    "413": {"description": f"body larger than {MAX_BODY_BYTES} bytes"},
}
OPENAPI_PATHS: dict[str, Any] = {
    REVIEW: {
        "get": {
            "summary": "A lesson's review (评课): notes by moment, scores, mean and rubric",
            "parameters": _LESSON,
            "responses": {"200": {"description": "the review"}, "404": {"description": "none"}},
        }
    },
    NOTES: {
        "post": {
            "summary": "Pin a note to a moment of a lesson (admin, inspector)",
            "parameters": _LESSON,
            "requestBody": {
                "required": True,
                **json_content(
                    {
                        "type": "object",
                        "required": ["at_s", "text"],
                        "properties": {
                            "at_s": {"type": "number", "minimum": 0},
                            "text": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE_CHARS},
                        },
                        "additionalProperties": False,
                    }
                ),
            },
            "responses": {"201": {"description": "the note"}, **_REFUSALS},
        }
    },
    SCORE: {
        "put": {
            "summary": "Score a lesson against the rubric; one score per reviewer (admin, "
            "inspector)",
            "parameters": _LESSON,
            "requestBody": {
                "required": True,
                **json_content(
                    {
                        "type": "object",
                        "required": ["scores"],
                        "properties": {
                            "scores": {
                                "type": "object",
                                "additionalProperties": {"type": "integer", "minimum": 0},
                            },
                            "comment": {"type": "string", "maxLength": MAX_COMMENT_CHARS},
                        },
                        "additionalProperties": False,
                    }
                ),
            },
            "responses": {"200": {"description": "the score"}, **_REFUSALS},
        }
    },
    RUBRIC: {
        "get": {
            "summary": "The rubric lessons are scored against",
            "responses": {"200": {"description": "the rubric", **json_content(_RUBRIC)}},
        },
        "put": {
            "summary": "Replace the county's rubric (admin)",
            "requestBody": {"required": True, **json_content(_RUBRIC)},
            "responses": {
                "200": {"description": "the rubric", **json_content(_RUBRIC)},
                "400": _REFUSALS["400"],
                "403": {"description": "only an administrator"},
                "413": _REFUSALS["413"],
            },
        },
    },
}
