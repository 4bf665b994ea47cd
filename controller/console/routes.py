"""Routes that serve the console's static files (no build step: plain HTML, CSS, ES
modules)."""

from __future__ import annotations

import pathlib

from aiohttp import web

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
