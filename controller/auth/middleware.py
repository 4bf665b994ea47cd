"""The aiohttp middleware that guards ``/api/v1``: who is calling (session cookie or API
token), whether their role may, the CSRF check for cookie-borne changes, and the audit row
for every change."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth import audit
from controller.auth.accounts import user_for_token
from controller.auth.roles import SAFE_METHODS, allowed, is_public, refusal
from controller.auth.web_sessions import COOKIE, Principal, find_session

log = logging.getLogger(__name__)

CSRF_HEADER = "X-CSRF-Token"
# Routes whose handlers write their own, more telling audit rows, or none: hanging up a
# patrol viewer is not worth a row (opening it is, as 'watch').
SELF_AUDITED = frozenset(
    {("DELETE", "/api/v1/session"), ("DELETE", "/api/v1/lessons/{lesson}/watch/{viewer}")}
)
# Audit action names other than "METHOD pattern": who watched which lesson (patrol).
AUDIT_ACTIONS = {("POST", "/api/v1/lessons/{lesson}/watch"): "watch"}

PRINCIPAL = web.RequestKey("principal", Principal)
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


class AuthGate:
    """Holds the database; ``middleware`` goes into the application's middlewares."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def _identify(self, request: web.Request) -> Principal | str:
        header = request.headers.get("Authorization", "")
        with self._sessions() as db:
            if header:
                scheme, _, token = header.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    return "the Authorization header must be 'Bearer <API token>'"
                user = user_for_token(db, token.strip())
                if user is None:
                    return (
                        "unknown API token; create one with "
                        "`classroom-controller token create USER`"
                    )
                return Principal(user.username, user.display_name, user.role, "token")
            cookie = request.cookies.get(COOKIE)
            if not cookie:
                return (
                    "sign in first: send the session cookie from POST /api/v1/session, "
                    "or 'Authorization: Bearer <API token>'"
                )
            return find_session(db, cookie)

    def _audit(self, principal: Principal, request: web.Request, pattern: str, status: int) -> None:
        with self._sessions() as db:
            audit.record(
                db,
                AUDIT_ACTIONS.get((request.method, pattern), f"{request.method} {pattern}"),
                username=principal.username,
                role=principal.role,
                target=request.path_qs,
                detail={"status": status, "via": principal.via},
                remote=request.remote or "",
            )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Authenticate, authorise, check CSRF, then run the handler and audit changes."""
        if not request.path.startswith("/api/v1/"):
            return await handler(request)
        pattern = route_pattern(request)
        if pattern is None or is_public(request.method, pattern):
            return await handler(request)
        found = await asyncio.to_thread(self._identify, request)
        if isinstance(found, str):
            return _error(401, found)
        if not allowed(found.role, request.method, pattern):
            return _error(403, refusal(found.role, request.method, pattern))
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
        response = await handler(request)
        if changes and response.status < 400 and (request.method, pattern) not in SELF_AUDITED:
            try:
                await asyncio.to_thread(self._audit, found, request, pattern, response.status)
            except Exception:  # the change is made; losing its audit row must be loud
                log.exception("could not write the audit row of %s %s", request.method, pattern)
        return response
