"""A term's quotas (考核指标) through the API, as the console's editor uses them.

- ``GET /api/v1/terms/{term}/quotas``: the quotas the term is checked against, whether it
  declared them or takes the county plans' defaults, and the choices each field takes;
- ``PUT /api/v1/terms/{term}/quotas``: ``{"quotas": [...]}`` declares exactly these (an
  empty list: the term checks no quota), ``{"defaults": true}`` goes back to the defaults.
  Admin and scheduler, county accounts only. Checked by the set-up file's own rules
  (``controller.timetable.quotas``); a refusal names the quota (from 1) and the field.

Bodies are capped at MAX_BODY_BYTES; the auth middleware audits every change, with the
quota ids the term now declares.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import CHANGE_DETAIL, scope_of
from controller.common.api_common import error, json_content, read_capped, run_db
from controller.common.errors import InvalidRequest, NotFound
from controller.db.models import Term
from controller.timetable.kinds import KINDS
from controller.timetable.quotas import (
    ANY,
    APPLIES,
    COUNTS,
    MEASURES,
    PERIODS,
    SCOPES,
    QuotaInvalid,
    parse_quotas,
    stored_quotas,
)

TERM_QUOTAS = "/api/v1/terms/{term}/quotas"
MAX_BODY_BYTES = 64 * 1024
MAX_QUOTAS = 100
CHOICES: dict[str, list[str]] = {
    "kind": [ANY, *KINDS],
    "period": list(PERIODS),
    "scope": list(SCOPES),
    "counts": list(COUNTS),
    "measure": list(MEASURES),
    "applies_to": list(APPLIES),
}


def _term(db: Session, term_id: str) -> Term:
    term = db.get(Term, term_id)
    if term is None:
        raise NotFound(
            f"term {term_id!r} does not exist; load it with 'timetable setup' (a [[term]] "
            "table in the set-up file)"
        )
    return term


def quotas_document(term: Term) -> dict[str, Any]:
    """What GET answers: the term, where its quotas come from, the quotas, the choices."""
    return {
        "term": term.id,
        "name": term.name,
        "start": term.start_date.isoformat(),
        "end": term.end_date.isoformat(),
        "source": "defaults" if term.quotas is None else "declared",
        "quotas": [q.to_dict() for q in stored_quotas(term.quotas)],
        "choices": CHOICES,
    }


def parse_body(raw: bytes) -> list[dict[str, Any]] | None:
    """The quotas to store from a PUT body (None: back to the defaults); QuotaInvalid names
    the quota and field, InvalidRequest the body's shape."""
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise InvalidRequest(f"body is not JSON ({err})") from None
    if not isinstance(body, dict) or set(body) not in ({"quotas"}, {"defaults"}):
        raise InvalidRequest(
            'send {"quotas": [...]} to declare the term\'s quotas (an empty list: none), '
            'or {"defaults": true} to use the county plans\' defaults'
        )
    if "defaults" in body:
        if body["defaults"] is not True:
            raise InvalidRequest('field "defaults" must be true (or send "quotas" instead)')
        return None
    entries = body["quotas"]
    if not isinstance(entries, list):
        raise InvalidRequest('field "quotas" must be an array of quotas (an empty one: none)')
    if len(entries) > MAX_QUOTAS:
        raise InvalidRequest(f"{len(entries)} quotas: a term declares at most {MAX_QUOTAS}")
    # null is "not set", as GET sends the optional fields a quota leaves out.
    cleaned = [
        {k: v for k, v in e.items() if v is not None} if isinstance(e, dict) else e for e in entries
    ]
    return [q.to_dict() for q in parse_quotas(cleaned, "quotas")]


class TermQuotasApi:
    """The routes; database work runs in a worker thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes."""
        return [web.get(TERM_QUOTAS, self.show), web.put(TERM_QUOTAS, self.replace)]

    async def show(self, request: web.Request) -> web.StreamResponse:
        """The term's quotas."""
        term_id = request.match_info["term"]

        def work(db: Session) -> web.StreamResponse:
            return web.json_response(quotas_document(_term(db, term_id)))

        return await run_db(self._sessions, work)

    async def replace(self, request: web.Request) -> web.StreamResponse:
        """Declare the term's quotas, or go back to the defaults."""
        term_id = request.match_info["term"]
        scope = scope_of(request)
        if not scope.county:
            return error(
                403,
                f"quotas are the county's: your account is limited to {scope.describe()}; "
                "a county account must change them",
            )
        raw = await read_capped(request, MAX_BODY_BYTES)
        if raw is None:
            return error(413, f"body larger than {MAX_BODY_BYTES} bytes")

        def work(db: Session) -> web.StreamResponse:
            term = _term(db, term_id)
            try:
                quotas = parse_body(raw)
            except QuotaInvalid as err:
                return web.json_response(
                    {"error": str(err), "index": err.index, "field": err.field}, status=400
                )
            term.quotas = quotas
            db.commit()
            request[CHANGE_DETAIL] = (
                {"term": term.id, "defaults": True}
                if quotas is None
                else {"term": term.id, "quotas": [q["id"] for q in quotas]}
            )
            return web.json_response(quotas_document(term))

        return await run_db(self._sessions, work)


_QUOTA = {
    "type": "object",
    "required": ["id", "label_zh", "label_en", "kind", "period", "scope", "min"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "label_zh": {"type": "string", "minLength": 1},
        "label_en": {"type": "string", "minLength": 1},
        "kind": {"type": "string", "description": "a lesson kind (English or Chinese) or any"},
        "period": {"type": "string", "enum": [*PERIODS, "term"]},
        "scope": {"type": "string", "enum": list(SCOPES)},
        "min": {"type": "integer", "minimum": 1},
        "counts": {"type": "string", "enum": list(COUNTS)},
        "per_subject": {"type": "boolean"},
        "subjects_of": {"type": ["string", "null"]},
        "measure": {"type": "string", "enum": list(MEASURES)},
        "each": {"type": "integer", "minimum": 0},
        "cross_school": {"type": "boolean"},
        "only_if_form": {"type": ["string", "null"]},
        "applies_to": {"type": "string", "enum": list(APPLIES)},
        "source": {"type": "string"},
    },
}
_TERM = [{"name": "term", "in": "path", "required": True, "schema": {"type": "string"}}]
_REFUSED = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "index": {"type": ["integer", "null"], "description": "the quota, from 1"},
        "field": {"type": ["string", "null"]},
    },
    "required": ["error"],
}
OPENAPI_PATHS: dict[str, Any] = {
    TERM_QUOTAS: {
        "get": {
            "summary": "A term's quotas (declared, or the county plans' defaults) and the "
            "choices of each field",
            "parameters": _TERM,
            "responses": {
                "200": {"description": "the quotas"},
                "404": {"description": "no such term"},
            },
        },
        "put": {
            "summary": "Declare a term's quotas (an empty list: none), or go back to the "
            'defaults with {"defaults": true} (admin, scheduler; county accounts)',
            "parameters": _TERM,
            "requestBody": {
                "required": True,
                **json_content(
                    {
                        "oneOf": [
                            {
                                "type": "object",
                                "required": ["quotas"],
                                "properties": {
                                    "quotas": {
                                        "type": "array",
                                        "items": _QUOTA,
                                        "maxItems": MAX_QUOTAS,
                                    }
                                },
                                "additionalProperties": False,
                            },
                            {
                                "type": "object",
                                "required": ["defaults"],
                                "properties": {"defaults": {"const": True}},
                                "additionalProperties": False,
                            },
                        ]
                    }
                ),
            },
            "responses": {
                "200": {"description": "the quotas now"},
                "400": {
                    "description": "a quota the rules refuse: which (from 1), the field, and "
                    "what to write",
                    **json_content(_REFUSED),
                },
                "403": {"description": "the role may not, or a school account"},
                "404": {"description": "no such term"},
                "413": {"description": f"body larger than {MAX_BODY_BYTES} bytes"},
            },
        },
    }
}
