"""A lesson's live push targets (直播推流): where the lead's programme goes over RTMP, and
how each push is doing.

A scheduler sets a lesson's targets (a DingTalk or WeChat live room, a county platform)
in the console or the API; the controller sends them to the lead classroom in its
``JoinLesson``; the lead's agent pushes its director's programme to each and reports each
push in its heartbeat. A push address carries the platform's stream key, a secret: it
travels only to the lead's agent, and everything shown or logged uses :func:`redact`.
"""

from __future__ import annotations

import urllib.parse

from protocols.messages import PushStatus, PushTarget

__all__ = ["MAX_TARGETS", "PushStatus", "PushTarget", "redact"]

MAX_TARGETS = 4  # each push is a connection and an AAC encoder on the classroom PC


def redact(url: str) -> str:
    """The URL without its stream key and query (push keys are secrets; never log them).

    ``rtmp://host:1935/live/abc?auth_key=…`` becomes ``rtmp://host:1935/live/***``.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    app = parts.path.strip("/").split("/")[0] if parts.path.strip("/") else ""
    return f"{parts.scheme}://{host}/{app}/***" if app else f"{parts.scheme}://{host}/***"
