"""The network feature's routes and OpenAPI fragment: network profiles and the live
bandwidth view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.network.api import OPENAPI_PATHS as NETWORK_PATHS
from controller.network.api import NetworkApi


def add_routes(
    app: web.Application,
    sessions: sessionmaker[Session],
    presence_online: Callable[[], list[str]],
) -> dict[str, Any]:
    """Add the network feature's routes to ``app``; its OpenAPI paths."""
    app.add_routes(NetworkApi(sessions, presence_online).routes())
    return dict(NETWORK_PATHS)
