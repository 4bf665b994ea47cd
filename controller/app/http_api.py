"""The controller's HTTP app, assembled: the middlewares every request passes (metrics,
body limits, TLS policy, AuthGate), each feature's routes and OpenAPI paths, and the
listeners. The routes themselves live in their feature folders."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.agents import routes as agents_routes
from controller.agents.actions import Requester
from controller.agents.keys import ServerKeys
from controller.analytics.api import OPENAPI_PATHS as ANALYTICS_PATHS
from controller.analytics.api import AnalyticsApi
from controller.auth import routes as auth_routes
from controller.auth.api import SECURITY, SECURITY_SCHEMES
from controller.auth.middleware import AuthGate
from controller.common.body_limits import SIGN_IN_BODY_LIMIT, STREAMED, BodyLimits
from controller.common.openapi import OPENAPI_KEY, assemble
from controller.common.security import SecurityPolicy
from controller.console import routes as console_routes
from controller.delivery.api import OPENAPI_PATHS as DELIVERY_PATHS
from controller.delivery.api import DeliveryApi
from controller.emergency.api import OPENAPI_PATHS as EMERGENCY_PATHS
from controller.emergency.api import EmergencyApi
from controller.emergency.publishing import emergency_publisher
from controller.floor.api import OPENAPI_PATHS as FLOOR_PATHS
from controller.floor.api import FloorApi, FloorSpreader
from controller.lessons import routes as lessons_routes
from controller.lessons.live_list import Relays
from controller.lessons.patrol import PatrolApi
from controller.lessons.patrol_janus import ANSWER_BODY_LIMIT
from controller.library.api import LibraryApi
from controller.library.openapi import OPENAPI_PATHS as LIBRARY_PATHS
from controller.live_push.api import OPENAPI_PATHS as LIVE_PUSH_PATHS
from controller.live_push.api import LivePushApi
from controller.metrics.api import METRICS_PATHS, MetricsApi
from controller.network import routes as network_routes
from controller.notify.api import OPENAPI_PATHS as NOTIFY_PATHS
from controller.notify.api import NotifyApi
from controller.notify.sender import Sender
from controller.publishing.api import OPENAPI_PATHS as PUBLISHING_PATHS
from controller.publishing.api import PublishingApi
from controller.publishing.origin import OriginConfig
from controller.recordings import routes as recordings_routes
from controller.recordings.uploads import UploadService
from controller.recordings.uploads_api import PART_ROUTE, UploadsApi
from controller.releases.api import OPENAPI_PATHS as RELEASE_PATHS
from controller.releases.api import ReleasesApi
from controller.report_archive.api import OPENAPI_PATHS as REPORT_ARCHIVE_PATHS
from controller.report_archive.api import ReportArchiveApi
from controller.review.api import OPENAPI_PATHS as REVIEW_PATHS
from controller.review.api import ReviewApi
from controller.timetable import routes as timetable_routes
from controller.timetable.csv_import import MAX_BYTES as CSV_MAX_BYTES
from controller.tls.policy import TlsPolicy, add_hsts

BODY_LIMITS = {
    ("POST", "/api/v1/session"): SIGN_IN_BODY_LIMIT,
    ("PUT", PART_ROUTE): STREAMED,  # bounded by put_part once the upload token is checked
    # The CSV's own cap, so the import names it (row count and size) rather than 1 MiB.
    ("POST", "/api/v1/timetable/import"): CSV_MAX_BYTES,
    ("POST", "/api/v1/lessons/{lesson}/watch/{viewer}/answer"): ANSWER_BODY_LIMIT,
}


async def _listen(site: web.TCPSite) -> int:
    await site.start()
    server = site._server
    assert server is not None
    port: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return port


#: The document's head; every path in it is a feature's (``add_routes`` of each folder).
BASE: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "classbridge controller API", "version": "1"},
    "components": {"securitySchemes": SECURITY_SCHEMES},
    "security": SECURITY,
}


class HttpApi:
    """The app: its middlewares, every feature's routes and OpenAPI paths, /healthz and
    the listeners; holds no state of its own beyond its collaborators."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        uploads: UploadService,
        keys: ServerKeys,
        presence_online: Callable[[], list[str]],
        relays: Callable[[], Relays | None] = lambda: None,
        hub: Callable[[], Requester | None] = lambda: None,
        floors: Callable[[], FloorSpreader | None] = lambda: None,
        security: SecurityPolicy | None = None,
        tls_policy: TlsPolicy | None = None,
        notify_poke: Callable[[], None] = lambda: None,
        notify_sender: Sender | None = None,
        publishing: OriginConfig | None = None,
    ) -> None:
        security = security or SecurityPolicy()
        self._sessions = sessions
        self.uploads = uploads
        self._keys = keys
        self.body_limits = BodyLimits(BODY_LIMITS)
        self.tls_policy = tls_policy or TlsPolicy()
        self.metrics = MetricsApi(sessions, presence_online)
        # Several controllers: leadership and the database's state for /healthz (set by
        # the daemon; None on SQLite).
        self.health_detail: Callable[[], dict[str, object]] | None = None
        self.app = web.Application(
            client_max_size=self.body_limits.default,
            # The TLS rule before anything reads or audits a request, but after the body
            # limits, whose clone() would drop the https scheme and client address a
            # trusted proxy's request is given.
            middlewares=[
                self.metrics.middleware,  # times every API request, refusals included
                self.body_limits.middleware,
                self.tls_policy.middleware,
                AuthGate(sessions, security).middleware,
            ],
        )
        self.app.add_routes([web.get("/healthz", self.healthz)])
        # Each feature adds its own routes and gives its own OpenAPI paths; the order is
        # the order routes are matched in.
        self.patrol = PatrolApi(sessions, relays, presence_online)
        self._uploads_api = UploadsApi(sessions, uploads)
        app = self.app
        features = [
            agents_routes.add_routes(app, sessions, presence_online, hub),
            lessons_routes.add_routes(app, sessions, uploads.storage, self.patrol),
            recordings_routes.add_routes(app, sessions, self._uploads_api),
            timetable_routes.add_routes(app, sessions),
            _add(app, ReportArchiveApi(sessions, uploads.storage), REPORT_ARCHIVE_PATHS),
            console_routes.add_routes(app, sessions, presence_online),
            network_routes.add_routes(app, sessions, presence_online),
            _add(app, FloorApi(sessions, floors), FLOOR_PATHS),
            _add(app, LivePushApi(sessions), LIVE_PUSH_PATHS),
            _add(app, EmergencyApi(sessions, emergency_publisher(publishing)), EMERGENCY_PATHS),
            _add(app, PublishingApi(sessions, publishing), PUBLISHING_PATHS),
            _add(app, ReviewApi(sessions), REVIEW_PATHS),
            _add(app, AnalyticsApi(sessions), ANALYTICS_PATHS),
            _add(app, NotifyApi(sessions, notify_poke, notify_sender), NOTIFY_PATHS),
            _add(app, LibraryApi(sessions, uploads.storage), LIBRARY_PATHS),
            _add(app, DeliveryApi(sessions, uploads.storage), DELIVERY_PATHS),
            _add(app, ReleasesApi(sessions, presence_online), RELEASE_PATHS),
            auth_routes.add_routes(app, sessions, security),
            _add(app, self.metrics, METRICS_PATHS),
        ]
        self.app[OPENAPI_KEY] = assemble(BASE, *features)
        console_routes.add_pages(self.app)
        self.app.on_response_prepare.append(add_hsts)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.proxy_port: int | None = None

    async def start(
        self, host: str, port: int, *, tls: ssl.SSLContext, proxy_port: int | None = None
    ) -> None:
        """Serve HTTPS on ``host:port`` (0 picks a free port) and, with trusted proxies,
        plain HTTP for them on ``proxy_port``."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        self.port = await _listen(web.TCPSite(self._runner, host, port, ssl_context=tls))
        if self.tls_policy.trusted_proxies and proxy_port is not None:
            self.proxy_port = await _listen(web.TCPSite(self._runner, host, proxy_port))

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness probe: 200 while the process serves. ``degraded`` is true while a
        controller on PostgreSQL cannot reach its database (``leadership`` says since
        when, and whether it leads): it still answers, so a load balancer keeps it."""
        if self.health_detail is None:
            return web.json_response({"ok": True, "degraded": False})
        detail = self.health_detail()
        # Unauthenticated: whether it leads and since when it is degraded, but no host
        # or node names (those are in the authenticated /api/v1/metrics).
        shown = {k: detail.get(k) for k in ("leader", "leader_since", "degraded_since")}
        degraded = detail.get("degraded_since") is not None
        return web.json_response({"ok": True, "degraded": degraded, "leadership": shown})

    @property
    def upload_errors(self) -> int:
        """Uploads refused or not stored since start-up."""
        return self._uploads_api.upload_errors


class _Routed(Protocol):
    def routes(self) -> list[web.RouteDef]: ...


def _add(app: web.Application, api: _Routed, paths: Mapping[str, Any]) -> Mapping[str, Any]:
    """Add a feature API's routes to ``app``; its OpenAPI paths."""
    app.add_routes(api.routes())
    return paths
