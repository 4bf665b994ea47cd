"""The emergency switch on a controller with an HLS origin: each lesson it holds is
published for students at home, with its watch links, and switching back unpublishes
exactly the lessons it published (one published before stays published)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from console.harness import Console
from helpers import needs

from controller.app.daemon import ControllerConfig
from controller.lessons.scheduling import schedule_lesson
from controller.live_push.store import push_targets
from controller.publishing.origin import why_unavailable
from controller.publishing.service import PublishingOptions
from controller.publishing.store import TARGET_NAME
from tests.peers.nginx_rtmp import free_port

pytestmark = [pytest.mark.e2e, needs(why_unavailable() is None, why_unavailable() or "")]
HTTP_PORT, RTMP_PORT = free_port(), free_port()


@pytest.fixture
def controller_config(controller_config: ControllerConfig) -> ControllerConfig:
    """The console's controller, running an HLS origin on loopback."""
    return dataclasses.replace(
        controller_config,
        publishing=PublishingOptions(
            http_listen=f"127.0.0.1:{HTTP_PORT}", rtmp_listen=f"127.0.0.1:{RTMP_PORT}"
        ),
    )


async def _call(console: Console, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        console.session(headers=console.bearer("scheduler")) as http,
        http.request(method, f"{console.base}/api/v1{path}", json=body) as r,
    ):
        return r.status, await r.json()


def _published(console: Console, lesson: str) -> bool:
    with console.db() as s:
        return any(t.name == TARGET_NAME for t in push_targets(s, lesson))


async def test_held_lessons_are_published_with_links_and_unpublished_when_back(
    console: Console,
) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)
    with console.db() as s:
        a = schedule_lesson(s, "city-101", ["village-201"], start, start + timedelta(minutes=40)).id
        b = schedule_lesson(
            s,
            "city-101",
            ["village-201"],
            start + timedelta(hours=1),
            start + timedelta(hours=1, minutes=40),
        ).id
    status, doc = await _call(console, "POST", f"/lessons/{b}/publish", {})
    assert status == 200, doc  # b was an open lesson already

    status, doc = await _call(
        console, "POST", "/emergency", {"school": "Village School", "hours": 8, "reason": "大雪"}
    )
    assert status == 201, doc
    held = {e["lesson"]: e for e in doc["lessons"]}
    assert held[a]["published"] is True and held[a]["problem"] == ""
    assert held[b]["published_before"] is True
    assert _published(console, a) and _published(console, b)
    # The public link is signed and opens the watch page; the intranet one is from the LAN.
    url = str(held[a]["public_url"])
    assert "/s/" in url and url.rstrip("/").endswith(a), url
    assert str(held[a]["intranet_url"]).rstrip("/").endswith(f"/lan/{a}")
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 200, await r.text()

    status, doc = await _call(console, "POST", f"/emergency/{doc['id']}/end")
    assert status == 200, doc
    assert not _published(console, a)  # published by the switch: unpublished
    assert _published(console, b)  # published before it: still published
