"""The auth feature's routes and OpenAPI fragment: sign-in, sessions, users and API
tokens (the AuthGate middleware in front of every route is the app's, in
controller.app.http_api)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.api import OPENAPI_PATHS as AUTH_PATHS
from controller.auth.api import AuthApi
from controller.common.security import SecurityPolicy


def add_routes(
    app: web.Application, sessions: sessionmaker[Session], security: SecurityPolicy
) -> dict[str, Any]:
    """Add the auth feature's routes to ``app``; its OpenAPI paths."""
    app.add_routes(AuthApi(sessions, security).routes())
    return dict(AUTH_PATHS)
