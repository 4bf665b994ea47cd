"""The console's own JSON routes: signing in and out, the audit log, user management; and
their OpenAPI description with the security schemes."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.auth import accounts, audit
from controller.auth.middleware import CSRF_HEADER, principal_of, scope_of
from controller.auth.roles import ROLES
from controller.auth.web_sessions import COOKIE, close_session, open_session
from controller.common.errors import InvalidRequest, NotFound
from controller.common.security import SecurityPolicy
from controller.db.models import ConsoleUser


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as err:
        raise InvalidRequest(f"body is not JSON: {err}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    return body


class AuthApi:
    """Routes for ``/api/v1/session``, ``/api/v1/audit`` and ``/api/v1/users``."""

    def __init__(
        self, sessions: sessionmaker[Session], policy: SecurityPolicy | None = None
    ) -> None:
        self._sessions = sessions
        self._policy = policy or SecurityPolicy()
        self._sign_in = accounts.SignIn()
        self._sign_in_lock = asyncio.Lock()

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the controller's application."""
        return [
            web.post("/api/v1/session", self.sign_in),
            web.get("/api/v1/session", self.session),
            web.delete("/api/v1/session", self.sign_out),
            web.get("/api/v1/audit", self.audit_log),
            web.get("/api/v1/users", self.users),
            web.post("/api/v1/users", self.add_user),
            web.post("/api/v1/users/{username}/unlock", self.unlock),
            web.post("/api/v1/users/{username}/disable", self.disable),
            web.post("/api/v1/users/{username}/enable", self.enable),
            web.put("/api/v1/session/password", self.change_password),
            web.get("/api/v1/tokens", self.tokens),
            web.delete("/api/v1/tokens/{token}", self.revoke_token),
        ]

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        """Check a user name and password; on success set the session cookie."""
        try:
            body = await _body(request)
        except InvalidRequest as err:
            return _error(400, str(err))
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username:
            return _error(400, 'send {"username": "...", "password": "..."}')
        remote = request.remote or ""

        def work() -> tuple[accounts.SignInResult, str, str]:
            with self._sessions() as db:
                result = self._sign_in.attempt(db, username, password, remote)
                if result.user is None:
                    reason = "wrong password"
                    if result.throttled or result.disabled:
                        reason = "throttled" if result.throttled else "disabled"
                    audit.record(
                        db,
                        "sign_in_failed",
                        username=username,
                        detail={"reason": reason},
                        remote=remote,
                    )
                    if result.retry_after and not result.throttled:
                        audit.record(
                            db,
                            "sign_in_throttled",
                            username=username,
                            detail={"failures": result.failures, "seconds": result.retry_after},
                            remote=remote,
                        )
                    return result, "", ""
                cookie, csrf = open_session(db, result.user, self._policy)
                audit.record(db, "sign_in", username=username, role=result.user.role, remote=remote)
                return result, cookie, csrf

        async with self._sign_in_lock:  # one Argon2 verification at a time: 64 MiB each
            result, cookie, csrf = await asyncio.to_thread(work)
        if result.user is None:
            status = 429 if result.throttled else 403 if result.disabled else 401
            answer = _error(status, result.message)
            if result.retry_after:
                answer.headers["Retry-After"] = str(int(result.retry_after))
            return answer
        response = web.json_response(
            {
                "user": result.user.username,
                "display_name": result.user.display_name,
                "role": result.user.role,
                "csrf": csrf,
            }
        )
        response.set_cookie(
            COOKIE, cookie, httponly=True, samesite="Strict", path="/", secure=request.secure
        )
        return response

    async def session(self, request: web.Request) -> web.Response:
        """Who is signed in, their role, and the CSRF token for changes."""
        who = principal_of(request)
        return web.json_response(
            {
                "user": who.username,
                "display_name": who.display_name,
                "role": who.role,
                "school": scope_of(request).school,  # None: the county
                "csrf": who.csrf,
                "via": who.via,
            }
        )

    async def sign_out(self, request: web.Request) -> web.Response:
        """Forget the session and clear the cookie."""
        who = principal_of(request)
        remote = request.remote or ""

        def work() -> None:
            with self._sessions() as db:
                if who.session_hash:
                    close_session(db, who.session_hash)
                audit.record(
                    db,
                    "sign_out",
                    username=who.username,
                    role=who.role,
                    remote=remote,
                )

        await asyncio.to_thread(work)
        response = web.json_response({"signed_out": who.username})
        response.del_cookie(COOKIE, path="/")
        return response

    async def audit_log(self, request: web.Request) -> web.Response:
        """Audit rows, newest first; ``limit``, ``user`` and ``action`` narrow them."""
        raw = request.query.get("limit", "100")
        if not raw.isdigit():
            return _error(400, f"query limit={raw!r} must be a whole number (1-1000)")

        def work() -> list[dict[str, Any]]:
            with self._sessions() as db:
                return audit.entries(
                    db, int(raw), request.query.get("user"), request.query.get("action")
                )

        return web.json_response(await asyncio.to_thread(work))

    async def users(self, request: web.Request) -> web.Response:
        """Every user with role and lock state."""

        def work() -> list[dict[str, object]]:
            with self._sessions() as db:
                rows = db.scalars(select(ConsoleUser).order_by(ConsoleUser.username)).all()
                return [accounts.user_document(u) for u in rows]

        return web.json_response(await asyncio.to_thread(work))

    async def add_user(self, request: web.Request) -> web.Response:
        """Create a user from ``{username, role, password, display_name}``."""
        try:
            body = await _body(request)
        except InvalidRequest as err:
            return _error(400, str(err))

        def work() -> dict[str, object]:
            with self._sessions() as db:
                user = accounts.add_user(
                    db,
                    str(body.get("username", "")),
                    str(body.get("role", "")),
                    str(body["password"]) if body.get("password") is not None else None,
                    str(body.get("display_name", "")),
                )
                return accounts.user_document(user)

        try:
            return web.json_response(await asyncio.to_thread(work), status=201)
        except InvalidRequest as err:
            return _error(400, str(err))

    async def unlock(self, request: web.Request) -> web.Response:
        """Lift a user's lock-out."""
        name = request.match_info["username"]

        def work() -> None:
            with self._sessions() as db:
                accounts.unlock(db, name)

        try:
            await asyncio.to_thread(work)
        except NotFound as err:
            return _error(404, str(err))
        return web.json_response({"unlocked": name})

    async def _set_disabled(self, request: web.Request, disabled: bool) -> web.Response:
        name = request.match_info["username"]
        who = principal_of(request)
        if disabled and name == who.username:
            return _error(
                400,
                "不能停用自己的账号 / you cannot disable your own account; ask another "
                "administrator",
            )

        def work() -> dict[str, object]:
            with self._sessions() as db:
                return accounts.user_document(accounts.set_disabled(db, name, disabled))

        try:
            return web.json_response(await asyncio.to_thread(work))
        except NotFound as err:
            return _error(404, str(err))

    async def disable(self, request: web.Request) -> web.Response:
        """Disable a user: their sessions end at once; sign-in and their API tokens are
        refused until enabled again."""
        return await self._set_disabled(request, True)

    async def enable(self, request: web.Request) -> web.Response:
        """Enable a disabled user again."""
        return await self._set_disabled(request, False)

    async def change_password(self, request: web.Request) -> web.Response:
        """The signed-in user changes their own password from ``{current, new}``; their
        other sessions end (this one stays)."""
        who = principal_of(request)
        try:
            body = await _body(request)
        except InvalidRequest as err:
            return _error(400, str(err))
        current, new = body.get("current"), body.get("new")
        if not isinstance(current, str) or not isinstance(new, str):
            return _error(400, 'send {"current": "...", "new": "..."}')
        remote = request.remote or ""

        def work() -> int:
            with self._sessions() as db:
                ended = accounts.change_own_password(
                    db, who.username, current, new, who.session_hash
                )
                audit.record(
                    db,
                    "password_changed",
                    username=who.username,
                    role=who.role,
                    target=who.username,
                    detail={"other_sessions_ended": ended, "via": who.via},
                    remote=remote,
                )
                return ended

        async with self._sign_in_lock:  # Argon2: one at a time
            try:
                ended = await asyncio.to_thread(work)
            except InvalidRequest as err:
                return _error(400, str(err))
        return web.json_response({"changed": who.username, "other_sessions_ended": ended})

    async def tokens(self, request: web.Request) -> web.Response:
        """Every API token (``user`` narrows them), with its id, state and expiry."""

        def work() -> list[dict[str, object]]:
            with self._sessions() as db:
                return accounts.list_api_tokens(db, request.query.get("user"))

        return web.json_response(await asyncio.to_thread(work))

    async def revoke_token(self, request: web.Request) -> web.Response:
        """Revoke an API token by the id ``GET /api/v1/tokens`` shows."""

        def work() -> dict[str, object]:
            with self._sessions() as db:
                return accounts.revoke_api_token(db, request.match_info["token"])

        try:
            return web.json_response(await asyncio.to_thread(work))
        except NotFound as err:
            return _error(404, str(err))
        except InvalidRequest as err:
            return _error(400, str(err))


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_ERR = {"content": {"application/json": {"schema": _ERROR}}}
_DENIED = {
    "401": {"description": "not signed in, session expired or unknown token", **_ERR},
    "403": {"description": "the role may not, or the CSRF token is missing or wrong", **_ERR},
}
_SESSION = {
    "type": "object",
    "properties": {
        "user": {"type": "string"},
        "display_name": {"type": "string"},
        "role": {"type": "string", "enum": list(ROLES)},
        "csrf": {"type": "string"},
    },
}

SECURITY_SCHEMES: dict[str, Any] = {
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": COOKIE},
    "csrfHeader": {
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER,
        "description": "With the session cookie, every change must send the csrf value of "
        "GET /api/v1/session.",
    },
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token from `classroom-controller token create USER`.",
    },
    "uploadToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "Agents only: the classroom's upload token with header X-Classroom.",
    },
}
SECURITY: list[dict[str, list[str]]] = [
    {"sessionCookie": [], "csrfHeader": []},
    {"bearerToken": []},
]

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/session": {
        "post": {
            "summary": "Sign in; sets the session cookie (HttpOnly, SameSite=Strict)",
            "security": [],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "username": {"type": "string"},
                                "password": {"type": "string"},
                            },
                            "required": ["username", "password"],
                        }
                    }
                }
            },
            "responses": {
                "200": {
                    "description": "signed in",
                    "content": {"application/json": {"schema": _SESSION}},
                },
                "400": {"description": "bad body", **_ERR},
                "401": {
                    "description": "wrong user name or password; after five in a row from "
                    "one address, Retry-After says how long that address must wait",
                    **_ERR,
                },
                "413": {"description": "body over 4 KiB", **_ERR},
                "429": {
                    "description": "this address must wait (Retry-After) before trying this "
                    "user name again; other addresses are not slowed",
                    **_ERR,
                },
            },
        },
        "get": {
            "summary": "Who is signed in, the role, and the CSRF token",
            "responses": {
                "200": {
                    "description": "the session",
                    "content": {"application/json": {"schema": _SESSION}},
                },
                **_DENIED,
            },
        },
        "delete": {
            "summary": "Sign out",
            "responses": {"200": {"description": "signed out"}, **_DENIED},
        },
    },
    "/api/v1/audit": {
        "get": {
            "summary": "The audit log, newest first (admin, inspector)",
            "parameters": [
                {"name": n, "in": "query", "schema": s}
                for n, s in (
                    ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    ("user", {"type": "string"}),
                    ("action", {"type": "string"}),
                )
            ],
            "responses": {"200": {"description": "audit rows"}, **_DENIED},
        }
    },
    "/api/v1/users": {
        "get": {
            "summary": "Users (admin)",
            "responses": {"200": {"description": "users"}, **_DENIED},
        },
        "post": {
            "summary": "Create a user (admin)",
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "username": {"type": "string"},
                                "role": {"type": "string", "enum": list(ROLES)},
                                "password": {"type": "string", "minLength": 12},
                                "display_name": {"type": "string"},
                            },
                            "required": ["username", "role"],
                        }
                    }
                }
            },
            "responses": {
                "201": {"description": "created"},
                "400": {"description": "bad user", **_ERR},
                **_DENIED,
            },
        },
    },
    "/api/v1/session/password": {
        "put": {
            "summary": "Change your own password; your other sessions end",
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "current": {"type": "string"},
                                "new": {"type": "string", "minLength": 12},
                            },
                            "required": ["current", "new"],
                        }
                    }
                }
            },
            "responses": {
                "200": {"description": "changed"},
                "400": {
                    "description": "wrong current password, or the new one breaks the "
                    "policy (the message says which rule, in Chinese and English)",
                    **_ERR,
                },
                **_DENIED,
            },
        }
    },
    **{
        f"/api/v1/users/{{username}}/{verb}": {
            "post": {
                "summary": summary,
                "parameters": [
                    {
                        "name": "username",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {"description": "the user"},
                    "400": {"description": "you cannot disable yourself", **_ERR},
                    "404": {"description": "no such user", **_ERR},
                    **_DENIED,
                },
            }
        }
        for verb, summary in (
            ("disable", "Disable a user: sessions end, sign-in and tokens refused (admin)"),
            ("enable", "Enable a disabled user again (admin)"),
        )
    },
    "/api/v1/tokens": {
        "get": {
            "summary": "API tokens with id, state and expiry (admin)",
            "parameters": [{"name": "user", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "tokens"}, **_DENIED},
        }
    },
    "/api/v1/tokens/{token}": {
        "delete": {
            "summary": "Revoke an API token by its id (admin)",
            "parameters": [
                {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "revoked"},
                "400": {"description": "not an id", **_ERR},
                "404": {"description": "no such token", **_ERR},
                **_DENIED,
            },
        }
    },
    "/api/v1/users/{username}/unlock": {
        "post": {
            "summary": "Clear a user's failed sign-ins from every address (admin)",
            "parameters": [
                {"name": "username", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "unlocked"},
                "404": {"description": "no such user", **_ERR},
                **_DENIED,
            },
        }
    },
}
