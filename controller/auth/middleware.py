"""The aiohttp middleware that guards ``/api/v1``: who is calling (session cookie or API
token), whether their role may, whether the lesson, classroom or alert in the path is in
their school scope, the CSRF check for cookie-borne changes, and the audit row for every change
and for every read of personal data (``controller.auth.personal``)."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.auth import audit
from controller.auth.accounts import user_for_token
from controller.auth.personal import personal_action
from controller.auth.roles import SAFE_METHODS, allowed, is_public, refusal
from controller.auth.scope import COUNTY, Scope
from controller.auth.viewing import VIEW_DETAIL, ViewingLedger
from controller.auth.web_sessions import COOKIE, Principal, find_session
from controller.common.security import SecurityPolicy
from controller.db.models import ConsoleUser

log = logging.getLogger(__name__)

CSRF_HEADER = "X-CSRF-Token"
# Routes whose handlers write their own, more telling audit rows: patrol writes 'watch'
# when a viewer opens and 'watch_end' with its duration when it closes (a Janus viewer's
# answer is part of the opening 'watch').
SELF_AUDITED = frozenset(
    {
        ("DELETE", "/api/v1/session"),
        ("POST", "/api/v1/lessons/{lesson}/watch"),
        ("DELETE", "/api/v1/lessons/{lesson}/watch/{viewer}"),
        ("POST", "/api/v1/lessons/{lesson}/watch/{viewer}/answer"),
    }
)
# Audit action names other than "METHOD pattern".
AUDIT_ACTIONS: dict[tuple[str, str], str] = {}
# Path parameters that name a lesson, a classroom or an alert (of a classroom), checked
# against the caller's scope.
LESSON_PARAMS = ("lesson",)
CLASSROOM_PARAMS = ("classroom",)
ALERT_PARAMS = ("alert",)
CLASSROOM_ID_ROUTES = "/api/v1/classrooms/{id}"  # and what lies under it

# What a handler adds to its change's audit row (e.g. which quotas a term now declares).
CHANGE_DETAIL = web.RequestKey("change_detail", dict)
PRINCIPAL = web.RequestKey("principal", Principal)
SCOPE = web.RequestKey("scope", Scope)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def route_pattern(request: web.Request) -> str | None:
    """The matched route's pattern, e.g. ``/api/v1/lessons/{lesson}``; None if unmatched."""
    if request.match_info.http_exception is not None:
        return None
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def principal_of(request: web.Request) -> Principal:
    """The principal the middleware put on the request."""
    return request[PRINCIPAL]


def scope_of(request: web.Request) -> Scope:
    """The caller's school scope (the county for routes that need no credential)."""
    scope: Scope = request.get(SCOPE, COUNTY)
    return scope


def viewer_key(principal: Principal) -> str:
    """Who holds a viewing: the browser session, or the token's user."""
    if principal.via == "session" and principal.session_hash:
        return "session:" + principal.session_hash
    return "token:" + principal.username


class AuthGate:
    """Holds the database; ``middleware`` goes into the application's middlewares."""

    def __init__(
        self, sessions: sessionmaker[Session], policy: SecurityPolicy | None = None
    ) -> None:
        self._sessions = sessions
        self._views = ViewingLedger()
        self._policy = policy or SecurityPolicy()

    def _identify(self, request: web.Request, pattern: str) -> tuple[Principal, Scope, bool] | str:
        """(principal, scope, whether the path's lesson/classroom is in scope), or why not."""
        header = request.headers.get("Authorization", "")
        with self._sessions() as db:
            found: Principal | str
            if header:
                scheme, _, token = header.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    return "the Authorization header must be 'Bearer <API token>'"
                user = user_for_token(db, token.strip())
                if isinstance(user, str):
                    return user
                found = Principal(user.username, user.display_name, user.role, "token")
            else:
                cookie = request.cookies.get(COOKIE)
                if not cookie:
                    return (
                        "sign in first: send the session cookie from POST /api/v1/session, "
                        "or 'Authorization: Bearer <API token>'"
                    )
                found = find_session(db, cookie, self._policy)
            if isinstance(found, str):
                return found
            school = db.scalar(
                select(ConsoleUser.school).where(ConsoleUser.username == found.username)
            )
            scope = Scope.of(found.role, school)
            return found, scope, self._in_scope(db, scope, request, pattern)

    @staticmethod
    def _in_scope(db: Session, scope: Scope, request: web.Request, pattern: str) -> bool:
        if scope.county:
            return True
        m = request.match_info
        lessons = [m[p] for p in LESSON_PARAMS if p in m]
        rooms = [m[p] for p in CLASSROOM_PARAMS if p in m]
        if pattern.startswith(CLASSROOM_ID_ROUTES) and "id" in m:
            rooms.append(m["id"])
        alerts = [m[p] for p in ALERT_PARAMS if p in m]
        return (
            all(scope.sees_lesson(db, x) for x in lessons)
            and all(scope.sees_classroom(db, c) for c in rooms)
            and all(scope.sees_alert(db, a) for a in alerts)
        )

    def _audit_read(
        self, principal: Principal, request: web.Request, action: str, detail: dict[str, Any]
    ) -> None:
        with self._sessions() as db:
            audit.record(
                db,
                action,
                username=principal.username,
                role=principal.role,
                target=request.path_qs,
                detail=detail,
                remote=request.remote or "",
            )

    async def _read_seen(
        self, principal: Principal, scope: Scope, request: web.Request, action: str, status: int
    ) -> None:
        """Write the audit row of a personal-data read, unless it folds into an open one."""
        detail: dict[str, Any] = {"status": status, "via": principal.via}
        if scope.school is not None:
            detail["school"] = scope.school
        detail.update(request.get(VIEW_DETAIL, {}))
        row = self._views.note(viewer_key(principal), request.path_qs, detail)
        if row is None:
            return
        try:
            await asyncio.to_thread(self._audit_read, principal, request, action, row)
        except Exception:  # the data went out; losing its audit row must be loud
            log.exception("could not write the audit row of %s %s", action, request.path_qs)

    def _audit(self, principal: Principal, request: web.Request, pattern: str, status: int) -> None:
        with self._sessions() as db:
            audit.record(
                db,
                AUDIT_ACTIONS.get((request.method, pattern), f"{request.method} {pattern}"),
                username=principal.username,
                role=principal.role,
                target=request.path_qs,
                detail={"status": status, "via": principal.via, **request.get(CHANGE_DETAIL, {})},
                remote=request.remote or "",
            )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Authenticate, authorise, check scope and CSRF, then run the handler and audit
        changes and personal-data reads."""
        if not request.path.startswith("/api/v1/"):
            return await handler(request)
        pattern = route_pattern(request)
        if pattern is None or is_public(request.method, pattern):
            return await handler(request)
        identified = await asyncio.to_thread(self._identify, request, pattern)
        if isinstance(identified, str):
            return _error(401, identified)
        found, scope, in_scope = identified
        personal = personal_action(request.method, pattern)
        if not allowed(found.role, request.method, pattern):
            if personal is not None:
                await self._read_seen(found, scope, request, personal, 403)
            return _error(403, refusal(found.role, request.method, pattern))
        if not in_scope:
            if personal is not None:
                await self._read_seen(found, scope, request, personal, 404)
            return _error(404, f"{request.path}: {scope.hidden('lesson, classroom or alert')}")
        changes = request.method not in SAFE_METHODS
        if changes and found.via == "session":
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent:
                return _error(
                    403,
                    f"missing CSRF token: send header {CSRF_HEADER} with the 'csrf' value "
                    "from GET /api/v1/session",
                )
            if not hmac.compare_digest(sent.encode(), found.csrf.encode()):
                return _error(
                    403,
                    f"wrong CSRF token in {CSRF_HEADER}: reload the console to get this "
                    "session's token from GET /api/v1/session",
                )
        request[PRINCIPAL] = found
        request[SCOPE] = scope
        if personal is not None:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # a redirect to storage is a read too
                await self._read_seen(found, scope, request, personal, exc.status)
                raise
            await self._read_seen(found, scope, request, personal, response.status)
            return response
        response = await handler(request)
        if changes and response.status < 400 and (request.method, pattern) not in SELF_AUDITED:
            try:
                await asyncio.to_thread(self._audit, found, request, pattern, response.status)
            except Exception:  # the change is made; losing its audit row must be loud
                log.exception("could not write the audit row of %s %s", request.method, pattern)
        return response
