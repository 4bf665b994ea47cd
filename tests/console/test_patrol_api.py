"""Patrol's API on a real controller: who may watch, errors that say what to do."""

from __future__ import annotations

import aiohttp
from console.harness import PASSWORD, Console

from controller.auth.roles import STAFF


async def test_every_staff_role_may_list_live_lessons_and_ask_to_watch(console: Console) -> None:
    async with (
        console.session(headers=console.bearer("teacher")) as http,
        http.get(f"{console.base}/api/v1/live") as r,
    ):
        assert r.status == 403  # teachers do not patrol other teachers' rooms
    for role in sorted(STAFF):
        async with console.session(headers=console.bearer(role)) as http:
            async with http.get(f"{console.base}/api/v1/live") as r:
                assert r.status == 200 and await r.json() == []
            body = {"sdp": "v=0\r\n", "feeds": [{"classroom": "a", "track": "t", "kind": "video"}]}
            async with http.post(f"{console.base}/api/v1/lessons/L9/watch", json=body) as r:
                assert r.status == 404, role  # not refused: the lesson simply is not live
                assert "GET /api/v1/live" in (await r.json())["error"]
            async with http.delete(f"{console.base}/api/v1/lessons/L9/watch/v-x") as r:
                assert r.status == 404


async def test_watch_from_a_cookie_needs_csrf_and_the_api_is_documented(console: Console) -> None:
    async with console.session(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        login = {"username": "inspector", "password": PASSWORD}
        async with http.post(f"{console.base}/api/v1/session", json=login) as r:
            assert r.status == 200
        async with http.post(f"{console.base}/api/v1/lessons/L9/watch", json={}) as r:
            assert r.status == 403 and "CSRF" in (await r.json())["error"]
        async with http.get(f"{console.base}/api/v1/openapi.json") as r:
            paths = (await r.json())["paths"]
    assert "/api/v1/live" in paths and "post" in paths["/api/v1/lessons/{lesson}/watch"]


async def test_a_janus_viewers_answer_is_size_limited_and_needs_a_waiting_viewer(
    console: Console,
) -> None:
    path = f"{console.base}/api/v1/lessons/L9/watch/v-x/answer"
    async with console.session(headers=console.bearer("inspector")) as http:
        async with http.post(path, json={"sdp": "v=0\r\n" + "a=x\r\n" * 20_000}) as r:
            assert r.status == 413 and "65536 bytes" in (await r.json())["error"]
        async with http.post(path, json={"sdp": "v=0\r\nm=video 9 RTP/AVP 0\r\n"}) as r:
            assert r.status == 404 and "POST .../watch again" in (await r.json())["error"]
        async with http.post(path, json={"sdp": "offer"}) as r:
            assert r.status == 400 and "SDP answer" in (await r.json())["error"]
