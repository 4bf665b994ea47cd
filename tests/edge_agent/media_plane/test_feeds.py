"""The room's feed directory, from VideoRoom event bodies as Janus 1.1 sends them."""

from __future__ import annotations

import asyncio

import pytest

from edge_agent.media_plane.feeds import FeedDirectory
from protocols.messages import JanusPlacement

pytestmark = pytest.mark.timeout(10)

LEAD = {
    "id": 11,
    "display": "lead-1",
    "streams": [
        {"type": "video", "mindex": 0, "mid": "0", "codec": "h264", "description": "teacher"},
        {"type": "video", "mindex": 1, "mid": "1", "codec": "h264", "description": "panel"},
        {"type": "audio", "mindex": 2, "mid": "2", "codec": "opus", "description": "mic"},
        {"type": "data", "mindex": 3, "mid": "3"},
    ],
}


async def test_feeds_are_found_by_classroom_and_track_and_forgotten_when_they_leave() -> None:
    feeds = FeedDirectory()
    waiting = asyncio.ensure_future(feeds.wait_for("lead-1", ["teacher", "mic"], 2))
    await asyncio.sleep(0)
    feeds.update({"videoroom": "event", "room": 5, "publishers": [LEAD, {"display": "no id"}]})
    feed = await waiting
    assert feed.feed_id == 11 and [s.track for s in feed.streams] == ["teacher", "panel", "mic"]
    stream = feed.stream("panel")
    assert stream is not None and (stream.mid, stream.kind) == ("1", "video")
    assert feeds.find("lead-1", ["students"]) is None
    feeds.update({"videoroom": "event", "leaving": 11})
    assert feeds.find("lead-1", ["teacher"]) is None
    with pytest.raises(TimeoutError):
        await feeds.wait_for("lead-1", ["teacher"], 0.1)


def test_the_pin_stays_out_of_repr() -> None:
    placement = JanusPlacement(api_url="http://10.0.0.5:8088/janus", room=42, pin="secret-pin")
    assert "secret-pin" not in repr(placement) and "42" in repr(placement)
