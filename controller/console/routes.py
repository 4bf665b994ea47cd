"""The console's routes: its static files (no build step: plain HTML, CSS, ES modules) and
its dashboard's data, with that data's OpenAPI fragment."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.console.dashboard_api import OPENAPI_PATHS as DASHBOARD_PATHS
from controller.console.dashboard_api import DashboardApi

STATIC = pathlib.Path(__file__).resolve().parent / "static"
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def index(request: web.Request) -> web.FileResponse:
    """The console page: it shows sign-in or the console shell by asking the API."""
    return web.FileResponse(STATIC / "index.html", headers=HEADERS)


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the page's headers on every static console file too."""
    if request.path.startswith("/console/"):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)


def console_routes() -> list[web.RouteDef | web.StaticDef]:
    """``/`` and the static files under ``/console/``."""
    return [web.get("/", index), web.static("/console/", STATIC)]


def add_routes(
    app: web.Application,
    sessions: sessionmaker[Session],
    presence_online: Callable[[], list[str]],
) -> dict[str, Any]:
    """Add the console's dashboard data routes to ``app`` (its pages come last, from
    ``add_pages``); their OpenAPI paths."""
    app.add_routes(DashboardApi(sessions, presence_online).routes())
    return dict(DASHBOARD_PATHS)


def add_pages(app: web.Application) -> None:
    """Serve the console's pages, with their security headers on every response."""
    app.add_routes(console_routes())
    app.on_response_prepare.append(add_headers)
