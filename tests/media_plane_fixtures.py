"""Helpers of the media plane's tests: configuration for real Janus servers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from benchlib.janus import JanusServer

from controller.media_plane.config import MediaPlaneConfig, parse_config

SECRET = "admin-secret-for-tests"

StartJanus = Callable[..., Awaitable[JanusServer]]


def instance(server: JanusServer, capacity: int = 4, **overrides: Any) -> dict[str, Any]:
    """A [janus.NAME] table for ``server``."""
    table: dict[str, Any] = {
        "api_url": server.url,
        "admin_url": server.admin_url,
        "admin_secret": server.admin_secret,
        "capacity": capacity,
    }
    table.update(overrides)
    return table


def plane_config(instances: dict[str, dict[str, Any]], **plane: Any) -> MediaPlaneConfig:
    """A checked janus configuration with fast polling unless ``plane`` says otherwise."""
    settings: dict[str, Any] = {
        "backend": "janus",
        "poll_interval_s": 0.3,
        "request_timeout_s": 0.5,
        "down_after_failures": 2,
    }
    settings.update(plane)
    return parse_config({"media_plane": settings, "janus": instances}, "test config")
