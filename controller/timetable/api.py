"""The timetable's JSON API (for the provincial platform and the console), with its
OpenAPI description at ``/api/v1/openapi.json``."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import scope_of
from controller.common.api_common import OUT_OF_SCOPE_RESPONSE, error, json_content, run_db
from controller.common.body_fields import (
    assistants_field,
    number_field,
    optional_string_field,
    string_field,
    string_list_field,
)
from controller.common.errors import InvalidRequest, RulesRefused
from controller.common.openapi import OPENAPI_KEY
from controller.db.models import Lesson, Teacher
from controller.db.session import as_utc
from controller.lessons.overrides import ACTIONS, override
from controller.lessons.scheduling import lesson_document, schedule_placed
from controller.timetable.check_api import LESSON_PROPERTIES
from controller.timetable.check_api import OPENAPI_PATHS as CHECK_PATHS
from controller.timetable.csv_import import OUT_OF_SCOPE, parse_timetable_csv
from controller.timetable.ical import lessons_for, to_ical
from controller.timetable.kinds import KINDS, canonical_kind
from controller.timetable.loading import insert_lessons, planner_for
from controller.timetable.quota_engine import evaluate_term
from controller.timetable.quota_reports import (
    RANKING_NOTE,
    VIEWS,
    build_view,
    csv_bytes,
    view_csv,
)
from controller.timetable.reports import check_label, report_csv, report_html, term_report
from controller.timetable.setup import bell_periods, term_calendar
from controller.timetable.week import lessons_query
from controller.timetable.xlsx_import import XLSX_TYPE

MAX_ROWS = 5000
QUOTA_ENTRIES = 2000  # schools, teachers, subjects or pairings in one quota report


def _day(request: web.Request, name: str) -> date | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"query {name}={value!r} is not a date (2026-03-02)") from None


def _moment(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"query {name}={value!r} is not a time (2026-03-02T00:00:00+08:00)"
        ) from None


class TimetableApi:
    """Routes; each handler runs its database work in a thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the controller's application."""
        return [
            web.get("/api/v1/openapi.json", self.openapi),
            web.get("/api/v1/timetable", self.timetable),
            web.get("/api/v1/timetable.ics", self.ical),
            web.post("/api/v1/timetable/import", self.import_csv),
            web.post("/api/v1/lessons", self.create),
            web.post("/api/v1/lessons/{lesson}/override", self.override),
            web.get("/api/v1/reports/pairings", self.report),
            web.get("/api/v1/reports/quotas", self.quota_report),
        ]

    async def _run(self, work: Callable[[Session], web.StreamResponse]) -> web.StreamResponse:
        return await run_db(self._sessions, work)

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI 3.1 description of the JSON API (the app's whole document, as
        controller.app.http_api assembled it; this module's alone if it runs by itself)."""
        return web.json_response(request.app[OPENAPI_KEY])

    async def timetable(self, request: web.Request) -> web.StreamResponse:
        """Lessons from ``from`` to ``to`` (dates) or overlapping ``start``..``end`` (times),
        maybe of a classroom, teacher, school or pairing; those in the caller's scope."""
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            q = request.query
            query = lessons_query(
                db,
                first=_day(request, "from"),
                last=_day(request, "to"),
                start=_moment(request, "start"),
                end=_moment(request, "end"),
                classroom=q.get("classroom"),
                teacher=q.get("teacher"),
                school=q.get("school"),
                pairing=q.get("pairing"),
            )
            lessons = db.scalars(scope.lessons(db, query).limit(MAX_ROWS + 1)).all()
            out = [_summary(x) for x in lessons[:MAX_ROWS]]
            return web.json_response({"lessons": out, "truncated": len(lessons) > MAX_ROWS})

        return await self._run(work)

    async def ical(self, request: web.Request) -> web.StreamResponse:
        """iCalendar of a classroom, teacher or school (its lessons in the caller's scope)."""
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            q = request.query
            lessons = lessons_for(db, q.get("classroom"), q.get("teacher"), q.get("school"), scope)
            name = q.get("classroom") or q.get("teacher") or q.get("school") or ""
            return web.Response(
                body=to_ical(lessons, f"classbridge {name}"),
                content_type="text/calendar",
                charset="utf-8",
            )

        return await self._run(work)

    async def import_csv(self, request: web.Request) -> web.StreamResponse:
        """Check a CSV or .xlsx workbook (body) for ``term``; ``mode`` dry-run (default),
        commit or good-rows.
        A row naming a classroom outside the caller's school refuses the whole file (403)."""
        data = await request.read()
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            term = request.query.get("term", "")
            mode = request.query.get("mode", "dry-run")
            if mode not in ("dry-run", "commit", "good-rows"):
                raise InvalidRequest("mode must be dry-run, commit or good-rows")
            cal = term_calendar(db, term)
            window = (cal.at(cal.start, "00:00"), cal.at(cal.end, "23:59"))
            teachers = set(db.scalars(select(Teacher.id)).all())
            result = parse_timetable_csv(
                data,
                planner_for(db, window),
                cal,
                bell_periods(db),
                teachers,
                None if scope.county else lambda ids: scope.require(db, ids, "import this row"),
            )
            refused = [p for p in result.problems if p.code == OUT_OF_SCOPE]
            write = not refused and ((mode == "commit" and result.clean) or mode == "good-rows")
            created = (
                insert_lessons(db, [(c, {"term_id": term}) for _, c in result.good], "imported")
                if write
                else []
            )
            status = 403 if refused else 200 if result.clean else 422
            return web.json_response(
                {
                    **({"error": "; ".join(map(str, refused))} if refused else {}),
                    "rows": result.rows,
                    "good": len(result.good),
                    "problems": [
                        {"row": p.row, "code": p.code, "message": p.message}
                        for p in result.problems
                    ],
                    "placements": [
                        {"row": row, **(placed.document() or {})}
                        for row, placed in result.placements
                    ],
                    # What the good rows make (the preview), in the term's local time.
                    "lessons": [
                        {
                            "row": row,
                            "kind": c.kind,
                            "start": c.start.astimezone(ZoneInfo(cal.timezone)).isoformat(),
                            "end": c.end.astimezone(ZoneInfo(cal.timezone)).isoformat(),
                            "lead": c.lead,
                            "receivers": list(c.receivers),
                            "teacher": c.teacher,
                            "subject": c.subject,
                            "title": c.title,
                        }
                        for row, c in result.good
                    ],
                    "written": write,
                    "created": created,
                },
                status=status,
            )

        return await self._run(work)

    async def create(self, request: web.Request) -> web.StreamResponse:
        """Create one lesson; 409 with every reason when the rules refuse it. The answer
        carries ``placement``: the ladder rung it went on and why (null without a network
        profile). 403 when a classroom is outside the caller's school."""
        try:
            body = await request.json()
        except ValueError as err:
            return error(400, f"body is not JSON: {err}")
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            if not isinstance(body, dict):
                raise InvalidRequest("body must be a JSON object")
            try:
                start = datetime.fromisoformat(str(body["start"]))
                end = datetime.fromisoformat(str(body["end"]))
                lead = str(body["lead"])
            except KeyError as err:
                raise InvalidRequest(f"field {err.args[0]!r} is required") from None
            except ValueError as err:
                raise InvalidRequest(f"start/end: {err}") from None
            receivers = string_list_field(body, "receivers")
            scope.require(db, [lead, *receivers], "schedule it")
            fields = (
                receivers,
                start,
                end,
                string_field(body, "title"),
                canonical_kind(string_field(body, "kind", "synchronous")),
                optional_string_field(body, "teacher"),
                string_field(body, "subject"),
                assistants_field(body),
            )
            try:
                lesson, placement = schedule_placed(db, lead, *fields)
            except RulesRefused as err:
                return web.json_response(
                    {
                        "error": str(err),
                        "problems": [{"code": c, "message": m} for c, m in err.problems],
                    },
                    status=409,
                )
            except InvalidRequest as err:
                return error(409, str(err))
            doc = {**lesson_document(db, lesson), "placement": placement.document()}
            return web.json_response(doc, status=201)

        return await self._run(work)

    async def override(self, request: web.Request) -> web.StreamResponse:
        """End early, extend, swap the lead, broadcast only, or cancel (403 for a lesson,
        or a new lead, that involves a classroom outside the caller's school)."""
        try:
            body = await request.json()
        except ValueError as err:
            return error(400, f"body is not JSON: {err}")
        scope = scope_of(request)
        lesson_id = request.match_info["lesson"]

        def work(db: Session) -> web.StreamResponse:
            if not isinstance(body, dict) or body.get("action") not in ACTIONS:
                raise InvalidRequest(f"body needs action: one of {', '.join(ACTIONS)}")
            scope.require_lesson(db, lesson_id, "change it")
            if new_lead := string_field(body, "lead"):
                scope.require(db, [new_lead], "make it the lead")
            lesson = override(
                db,
                lesson_id,
                str(body["action"]),
                string_field(body, "actor", "api"),
                number_field(body, "minutes", 0.0),
                string_field(body, "lead"),
            )
            return web.json_response(lesson_document(db, lesson))

        return await self._run(work)

    async def report(self, request: web.Request) -> web.StreamResponse:
        """Every pairing (those of the caller's school, if scoped) against its quotas;
        ``format`` json (default), csv or html."""
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            first, last = _day(request, "from"), _day(request, "to")
            if first is None or last is None:
                raise InvalidRequest("query from and to (dates) are required")
            reports = term_report(db, first, last, scope=scope)
            fmt = request.query.get("format", "json")
            if fmt == "csv":
                # With a BOM: Excel on a Chinese PC otherwise reads UTF-8 as GBK.
                return web.Response(
                    body=report_csv(reports).encode("utf-8-sig"),
                    content_type="text/csv",
                    charset="utf-8",
                    headers={
                        "Content-Disposition": (
                            f'attachment; filename="pairings-{first}-{last}.csv"'
                        )
                    },
                )
            if fmt == "html":
                return web.Response(
                    text=report_html(reports, f"Pairing report {first} – {last}"),
                    content_type="text/html",
                )
            return web.json_response(
                [
                    {
                        "pairing": r.pairing,
                        "schools": r.schools,
                        "met": r.met,
                        "counts": r.counts,
                        "synchronous_held_by_subject": r.subjects,
                        "quotas": [
                            {
                                "quota": n,
                                "label_zh": check_label(n)[0],
                                "label_en": check_label(n)[1],
                                "held": h,
                                "required": q,
                                "met": ok,
                            }
                            for n, h, q, ok in r.checks
                        ],
                        "lessons": [o.__dict__ for o in r.lessons],
                    }
                    for r in reports
                ]
            )

        return await self._run(work)

    async def quota_report(self, request: web.Request) -> web.StreamResponse:
        """A term's quotas by ``by`` (school, teacher, subject or pairing), for the caller's
        scope; ``format`` json (default) or csv; at most ``limit`` entries."""
        scope = scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            term, by, fmt, limit = _quota_query(request)
            tq = evaluate_term(db, term, scope)
            entries = build_view(tq, by)
            shown = entries[:limit]
            if fmt == "csv":
                return web.Response(
                    body=csv_bytes(view_csv(shown, by)),
                    content_type="text/csv",
                    charset="utf-8",
                    headers={
                        "Content-Disposition": (
                            f'attachment; filename="quotas-{_file_safe(term)}-{by}.csv"'
                        )
                    },
                )
            return web.json_response(
                {
                    "term": term,
                    "by": by,
                    "quotas": [x.to_dict() for x in tq.quotas],
                    "ranking": RANKING_NOTE if by == "school" else None,
                    "truncated": len(entries) > limit,
                    "entries": [e.to_json() for e in shown],
                }
            )

        return await self._run(work)


def _file_safe(text: str) -> str:
    """``text`` with only the characters every browser takes in a header's file name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _quota_query(request: web.Request) -> tuple[str, str, str, int]:
    """term, by, format and limit of a quota report request, each checked."""
    q = request.query
    term, by, fmt = q.get("term", ""), q.get("by", "school"), q.get("format", "json")
    if not term or len(term) > 64:
        raise InvalidRequest("query term (a term id, at most 64 characters) is required")
    if by not in VIEWS:
        raise InvalidRequest(f"query by={by[:40]!r}: use one of {', '.join(VIEWS)}")
    if fmt not in ("json", "csv"):
        raise InvalidRequest(f"query format={fmt[:40]!r}: use json or csv")
    raw = q.get("limit", str(QUOTA_ENTRIES))
    if not raw.isdigit() or not 1 <= int(raw) <= QUOTA_ENTRIES:
        raise InvalidRequest(f"query limit: a whole number from 1 to {QUOTA_ENTRIES}")
    return term, by, fmt, int(raw)


def _summary(x: Lesson) -> dict[str, Any]:
    return {
        "id": x.id,
        "kind": x.kind,
        "state": x.state,
        "subject": x.subject,
        "teacher": x.teacher_id,
        "lead": x.lead_classroom_id,
        "receivers": [r.classroom_id for r in x.receivers],
        "start_at": as_utc(x.start_at).isoformat(),
        "end_at": as_utc(x.end_at).isoformat(),
        "one_way": x.one_way,
        "rung": x.rung,
        "series": x.series_id,
        "pairing": x.pairing_id,
    }


_LESSON = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string", "enum": list(KINDS)},
        "state": {"type": "string"},
        "subject": {"type": "string"},
        "teacher": {"type": ["string", "null"]},
        "lead": {"type": "string"},
        "receivers": {"type": "array", "items": {"type": "string"}},
        "start_at": {"type": "string", "format": "date-time"},
        "end_at": {"type": "string", "format": "date-time"},
        "one_way": {"type": "boolean"},
        "rung": {"type": ["string", "null"], "description": "ladder rung it is placed on"},
    },
}
_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_PLACEMENT = {
    "type": ["object", "null"],
    "description": "the network profile's ladder rung the lesson was placed on, and why "
    "(null when no sending classroom has a network profile)",
    "properties": {
        "rung": {"type": "string"},
        "kbps": {"type": "integer"},
        "reason": {"type": "string"},
    },
}
_REFUSED = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "required": ["error"],
}
_DATE = {"type": "string", "format": "date"}


def _q(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


#: The timetable feature's paths: the timetable, its import and export, scheduling a lesson
#: and its overrides, the reports (the app's document is assembled in controller.app).
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/timetable": {
        "get": {
            "summary": "Lessons of the timetable",
            "parameters": [
                _q("from", _DATE),
                _q("to", _DATE),
                _q("classroom", {"type": "string"}),
                _q("teacher", {"type": "string"}),
                _q("school", {"type": "string"}),
                _q("pairing", {"type": "string"}),
                _q("start", {"type": "string", "format": "date-time"}),
                _q("end", {"type": "string", "format": "date-time"}),
            ],
            "responses": {
                "200": {
                    "description": "lessons",
                    **json_content(
                        {
                            "type": "object",
                            "properties": {"lessons": {"type": "array", "items": _LESSON}},
                        }
                    ),
                },
                "400": {"description": "bad query", **json_content(_ERROR)},
            },
        }
    },
    "/api/v1/timetable.ics": {
        "get": {
            "summary": "iCalendar of a classroom, teacher or school (exactly one)",
            "parameters": [
                _q("classroom", {"type": "string"}),
                _q("teacher", {"type": "string"}),
                _q("school", {"type": "string"}),
            ],
            "responses": {
                "200": {"description": "text/calendar"},
                "400": {"description": "bad query", **json_content(_ERROR)},
            },
        }
    },
    "/api/v1/timetable/import": {
        "post": {
            "summary": "Check (and optionally write) a term's timetable CSV",
            "parameters": [
                _q("term", {"type": "string"}, True),
                _q("mode", {"type": "string", "enum": ["dry-run", "commit", "good-rows"]}),
            ],
            "requestBody": {
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
                }
            },
            "responses": {
                "200": {"description": "clean"},
                "422": {"description": "problems by row"},
                "403": OUT_OF_SCOPE_RESPONSE,
                "400": {"description": "unusable", **json_content(_ERROR)},
                "404": {"description": "unknown term", **json_content(_ERROR)},
            },
        }
    },
    "/api/v1/lessons": {
        "post": {
            "summary": "Create a lesson (the scheduling rules answer with reasons)",
            "requestBody": json_content(
                {
                    "type": "object",
                    "required": ["lead", "start", "end"],
                    "properties": LESSON_PROPERTIES,
                }
            ),
            "responses": {
                "201": {
                    "description": "created, with the rung it was placed on",
                    **json_content(
                        {
                            "allOf": [_LESSON],
                            "properties": {"placement": _PLACEMENT},
                        }
                    ),
                },
                "400": {"description": "invalid", **json_content(_ERROR)},
                "403": OUT_OF_SCOPE_RESPONSE,
                "404": {"description": "unknown classroom", **json_content(_ERROR)},
                "409": {"description": "refused by the rules", **json_content(_REFUSED)},
            },
        },
    },
    "/api/v1/lessons/{lesson}/override": {
        "post": {
            "summary": "End early, extend, swap lead, broadcast only, cancel",
            "parameters": [
                {"name": "lesson", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "requestBody": json_content(
                {
                    "type": "object",
                    "required": ["action"],
                    "properties": {
                        "action": {"type": "string", "enum": list(ACTIONS)},
                        "minutes": {"type": "number"},
                        "lead": {"type": "string"},
                        "actor": {"type": "string"},
                    },
                }
            ),
            "responses": {
                "200": {"description": "changed"},
                "400": {"description": "refused", **json_content(_ERROR)},
                "403": OUT_OF_SCOPE_RESPONSE,
                "404": {"description": "unknown", **json_content(_ERROR)},
            },
        }
    },
    "/api/v1/reports/pairings": {
        "get": {
            "summary": "Every pairing's lessons against its quotas",
            "parameters": [
                _q("from", _DATE, True),
                _q("to", _DATE, True),
                _q("format", {"type": "string", "enum": ["json", "csv", "html"]}),
            ],
            "responses": {
                "200": {"description": "report"},
                "400": {"description": "bad query", **json_content(_ERROR)},
            },
        }
    },
    "/api/v1/reports/quotas": {
        "get": {
            "summary": "A term's quotas by school (ranked), teacher, subject or pairing",
            "parameters": [
                _q("term", {"type": "string", "maxLength": 64}, True),
                _q("by", {"type": "string", "enum": list(VIEWS)}),
                _q("format", {"type": "string", "enum": ["json", "csv"]}),
                _q("limit", {"type": "integer", "minimum": 1, "maximum": QUOTA_ENTRIES}),
            ],
            "responses": {
                "200": {"description": "report (CSV: UTF-8 with a BOM)"},
                "400": {"description": "bad query", **json_content(_ERROR)},
                "404": {"description": "unknown term", **json_content(_ERROR)},
            },
        }
    },
    **CHECK_PATHS,
}
