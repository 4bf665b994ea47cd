"""A controller started without --hls-origin: publishing is refused, saying how to turn
it on, and the state reads as off."""

from __future__ import annotations

from console.floor_seed import floor_lesson
from console.harness import Console


async def test_publishing_without_an_origin_says_how_to_turn_it_on(console: Console) -> None:
    lesson = floor_lesson(console, state="scheduled")
    url = f"{console.base}/api/v1/lessons/{lesson}/publish"
    async with console.session(headers=console.bearer("scheduler")) as http:
        async with http.post(url, json={"valid_hours": 1}) as r:
            assert r.status == 409
            assert "--hls-origin" in (await r.json())["error"]
        async with http.get(url) as r:
            doc = await r.json()
            assert r.status == 200 and doc["origin"] is False and doc["published"] is False
        async with http.delete(url) as r:
            assert r.status == 404 and "not published" in (await r.json())["error"]
