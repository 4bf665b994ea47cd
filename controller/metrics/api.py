"""``GET /api/v1/metrics``: Prometheus's exposition format, for a scraper with an API token.

Like every ``/api/v1`` route it needs a signed-in account or ``Authorization: Bearer``
with an API token (``classroom-controller users token``); technicians and admins may read
it; an account scoped to one school reads that school's classrooms only (and not
the API's latency). ``GET /metrics`` redirects there, so a scraper configured with the
usual path works once it sends the token. The database is read in a worker thread, off
the event loop that carries the hub and the relay. The API's own latency is timed here
too, by route.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import scope_of
from controller.metrics.collector import PREFIX, ControllerCollector

ROUTE = "/api/v1/metrics"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Seconds: from a cached read (ms) to an import checked against the database (s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


METRICS_PATHS = {
    ROUTE: {
        "get": {
            "summary": "Prometheus metrics: agents online, lessons by state, each online "
            "classroom's media figures, uploads, storage, open alerts, API latency",
            "tags": ["operations"],
            "responses": {
                "200": {"description": "Prometheus text exposition format"},
                "401": {"description": "no session or API token"},
                "403": {"description": "only technicians and admins read metrics"},
            },
        }
    }
}


class MetricsApi:
    """The scrape route, the redirect from ``/metrics`` and the latency middleware."""

    def __init__(self, sessions: sessionmaker[Session], online: Callable[[], list[str]]) -> None:
        self._sessions, self._online = sessions, online
        # The county's view: the controller's figures and the API's latency.
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(ControllerCollector(sessions, online))
        self.latency = Histogram(
            f"{PREFIX}_api_request_seconds",
            "Time the controller took to answer an API request, by route and status class",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the application."""
        return [web.get(ROUTE, self.scrape), web.get("/metrics", self.redirect)]

    async def scrape(self, request: web.Request) -> web.Response:
        """Every metric, read now (one school's, for an account scoped to its school)."""
        school = scope_of(request).school
        registry = self.registry
        if school is not None:
            registry = CollectorRegistry(auto_describe=True)
            registry.register(ControllerCollector(self._sessions, self._online, school=school))
        body = await asyncio.to_thread(generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def redirect(self, request: web.Request) -> web.Response:
        """The usual scrape path, to the authenticated one."""
        raise web.HTTPPermanentRedirect(ROUTE)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Time each API request by its route pattern (never by its path: ids would
        make a series per lesson)."""
        if not request.path.startswith("/api/"):
            return await handler(request)
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            info = request.match_info.route.resource
            route = info.canonical if info is not None else "unmatched"
            self.latency.labels(request.method, route, f"{status // 100}xx").observe(
                time.perf_counter() - start
            )
