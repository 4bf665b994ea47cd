"""The report archive's routes:

- ``GET  /api/v1/reports/archive``: every stored report, by term and period, with its files;
- ``GET  /api/v1/reports/archive/{term}/{period}/{file}``: one file (the HTML opens to
  print; a CSV downloads), served from local storage or redirected to S3;
- ``POST /api/v1/reports/archive``: ``{"term": ..., "period": "2026-03" | "term"}`` writes
  that report now (admin, scheduler), replacing a stored one.

The reports are the county's: a school-scoped account is refused (its own figures are at
``/api/v1/reports/quotas``). Teachers are refused by the role table.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import CHANGE_DETAIL, scope_of
from controller.common.api_common import error, json_content, read_capped, run_db
from controller.common.errors import InvalidRequest, NotFound
from controller.db.models import Term
from controller.report_archive.build import CSV_NAMES, FILE_NAMES, HTML_NAME
from controller.report_archive.periods import period_of
from controller.report_archive.scheduler import generate, utc_now
from controller.report_archive.store import (
    ARCHIVE_ROUTE,
    MANIFEST,
    list_archive,
    report_key,
)
from controller.storage.backend import StorageBackend, StorageError

FILE_ROUTE = ARCHIVE_ROUTE + "/{term}/{period}/{file}"
MAX_BODY_BYTES = 1024
TYPES = {HTML_NAME: "text/html", MANIFEST: "application/json"}
# The stored HTML is ours and has no script; it still gets a policy that allows none.
HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}
_PERIOD = re.compile(r"^(\d{4}-\d{2}|term)$")


def _county_only(request: web.Request) -> web.Response | None:
    scope = scope_of(request)
    if scope.county:
        return None
    return error(
        403,
        f"the archive holds the county's reports; your account is limited to "
        f"{scope.describe()}: read its figures at /api/v1/reports/quotas",
    )


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


class ReportArchiveApi:
    """The routes; storage and database work run in worker threads."""

    def __init__(self, sessions: sessionmaker[Session], storage: StorageBackend) -> None:
        self._sessions = sessions
        self._storage = storage

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes."""
        return [
            web.get(ARCHIVE_ROUTE, self.listing),
            web.post(ARCHIVE_ROUTE, self.run),
            web.get(FILE_ROUTE, self.download),
        ]

    async def listing(self, request: web.Request) -> web.StreamResponse:
        """Every stored report."""
        if refused := _county_only(request):
            return refused

        def work(db: Session) -> web.StreamResponse:
            found = list_archive(self._storage)
            return web.json_response({"reports": [a.document() for a in found]})

        return await run_db(self._sessions, work)

    async def download(self, request: web.Request) -> web.StreamResponse:
        """One file of a stored report."""
        if refused := _county_only(request):
            return refused
        m = request.match_info
        term, period, name = m["term"], m["period"], m["file"]
        if name not in (*FILE_NAMES, MANIFEST) or not _PERIOD.match(period):
            return error(
                400,
                f"{name[:40]!r} of period {period[:20]!r}: a report's files are "
                f"{', '.join((*FILE_NAMES, MANIFEST))}, its period YYYY-MM or term; "
                f"GET {ARCHIVE_ROUTE} lists them",
            )
        try:
            key = report_key(term, period, name)
        except ValueError as err:
            return error(400, str(err))
        missing = f"{term} {period} {name}: not in the archive; GET {ARCHIVE_ROUTE} lists it"
        local = self._storage.local_path(key)
        content_type = TYPES.get(name, "text/csv")
        if local is not None:
            if not local.is_file():
                return error(404, missing)
            headers = {"Content-Type": content_type + "; charset=utf-8"}
            if name == HTML_NAME:
                headers.update(HTML_HEADERS)
            else:
                what = next((by for by, n in CSV_NAMES.items() if n == name), "manifest")
                filename = _file_safe(f"report-{term}-{period}-{what}{name[name.rfind('.') :]}")
                headers["Content-Disposition"] = f'attachment; filename="{filename}"'
            return web.FileResponse(local, headers=headers)
        try:
            keys = await asyncio.to_thread(self._storage.keys, key.rsplit("/", 1)[0])
            url = await asyncio.to_thread(self._storage.read_url, key) if key in keys else None
        except StorageError as err:
            return error(503, f"storage failed: {err}; retry later")
        if url is None:
            return error(404, missing)
        return web.Response(status=302, headers={"Location": url})

    async def run(self, request: web.Request) -> web.StreamResponse:
        """Write one report now."""
        if refused := _county_only(request):
            return refused
        raw = await read_capped(request, MAX_BODY_BYTES)
        if raw is None:
            return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw)
        except ValueError as err:
            return error(400, f"body is not JSON ({err})")
        if (
            not isinstance(body, dict)
            or set(body) != {"term", "period"}
            or not all(isinstance(body[k], str) for k in body)
        ):
            return error(400, 'send {"term": "<term id>", "period": "YYYY-MM" or "term"}')

        def work(db: Session) -> web.StreamResponse:
            term = db.get(Term, body["term"])
            if term is None:
                raise NotFound(f"term {body['term'][:64]!r} does not exist")
            p = period_of(term, body["period"])
            try:
                report_key(p.term, p.period, MANIFEST)
            except ValueError as err:
                raise InvalidRequest(str(err)) from None
            done = generate(self._sessions, self._storage, p, utc_now())
            request[CHANGE_DETAIL] = {"term": p.term, "period": p.period}
            return web.json_response(done.document(), status=201)

        try:
            return await run_db(self._sessions, work)
        except (StorageError, OSError) as err:
            return error(503, f"storage failed: {err}; retry later")


_FILE_PARAMS = [
    {"name": "term", "in": "path", "required": True, "schema": {"type": "string"}},
    {
        "name": "period",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^(\\d{4}-\\d{2}|term)$"},
    },
    {
        "name": "file",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [*FILE_NAMES, MANIFEST]},
    },
]
OPENAPI_PATHS: dict[str, Any] = {
    ARCHIVE_ROUTE: {
        "get": {
            "summary": "The stored monthly and term reports (county accounts)",
            "responses": {
                "200": {"description": "reports by term and period, with their files"},
                "403": {"description": "a teacher, or a school-scoped account"},
            },
        },
        "post": {
            "summary": "Write a month's or the term's report now (admin, scheduler)",
            "requestBody": {
                "required": True,
                **json_content(
                    {
                        "type": "object",
                        "required": ["term", "period"],
                        "properties": {
                            "term": {"type": "string"},
                            "period": {"type": "string", "pattern": "^(\\d{4}-\\d{2}|term)$"},
                        },
                        "additionalProperties": False,
                    }
                ),
            },
            "responses": {
                "201": {"description": "the report's listing entry"},
                "400": {"description": "a malformed body, or a month outside the term"},
                "403": {"description": "the role may not, or a school-scoped account"},
                "404": {"description": "no such term"},
                "413": {"description": f"body larger than {MAX_BODY_BYTES} bytes"},
            },
        },
    },
    FILE_ROUTE: {
        "get": {
            "summary": "One file of a stored report: the printable HTML (with charts), a "
            "CSV per view (UTF-8 with a BOM), or its manifest",
            "parameters": _FILE_PARAMS,
            "responses": {
                "200": {"description": "the file"},
                "302": {"description": "a signed URL in S3 storage"},
                "400": {"description": "not a report's file or period"},
                "404": {"description": "not in the archive"},
            },
        }
    },
}
