"""Feed fan-out logic: keyframe gating, bounded queues, keyframe-request rate limit."""

from __future__ import annotations

import asyncio

from controller.relay.feed import QUEUE_LIMIT, Feed

KEY = b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x00\x01\x65\x88"
DELTA = b"\x00\x00\x00\x01\x41\x9a"


async def test_new_subscriber_starts_on_a_keyframe_and_asks_for_one() -> None:
    feed = Feed("lead", "teacher", "video")
    requests: list[int] = []
    feed.attach_publisher(lambda: requests.append(1) or True)
    track = feed.subscribe()
    assert requests == [1]
    feed.publish(DELTA, 0)
    feed.publish(KEY, 3000)
    feed.publish(DELTA, 6000)
    first = await asyncio.wait_for(track.recv(), 1)
    assert bytes(first) == KEY and first.pts == 3000
    assert track.dropped == 1


async def test_stalled_subscriber_is_resynchronised_not_buffered_forever() -> None:
    feed = Feed("lead", "teacher", "video")
    feed.attach_publisher(lambda: True)
    track = feed.subscribe()
    feed.publish(KEY, 0)
    for i in range(1, QUEUE_LIMIT + 5):
        feed.publish(DELTA, i * 3000)
    assert track._queue.qsize() < QUEUE_LIMIT
    assert track.dropped >= QUEUE_LIMIT - 1
    assert feed.dropped == track.dropped  # the lesson's relay stats say so at its end


async def test_the_lessons_relay_stats_count_what_it_dropped() -> None:
    from controller.relay.room import LessonRelay

    relay = LessonRelay("l1")
    feed = relay.feed("lead", "teacher", "video")
    feed.attach_publisher(lambda: True)
    feed.subscribe()
    feed.publish(KEY, 0)
    for i in range(1, QUEUE_LIMIT + 5):
        feed.publish(DELTA, i * 3000)
    stats = relay.stats()["lead/teacher"]
    assert stats["frames_in"] == QUEUE_LIMIT + 5  # the keyframe, then the rest
    assert stats["dropped"] >= QUEUE_LIMIT - 1


async def test_keyframe_requests_are_rate_limited_then_sent() -> None:
    feed = Feed("lead", "teacher", "video")
    sent: list[int] = []
    feed.attach_publisher(lambda: sent.append(1) or True)
    feed.request_keyframe()
    feed.request_keyframe()
    assert sent == [1]
    await asyncio.sleep(0.35)
    feed.publish(DELTA, 0)  # the pending request goes out with the next frame
    assert sent == [1, 1]


async def test_publisher_reconnect_keeps_subscriber_clock_monotonic() -> None:
    feed = Feed("lead", "mic", "audio")
    feed.attach_publisher(lambda: True)
    track = feed.subscribe()
    feed.publish(b"a", 1000)
    feed.publish(b"b", 1960)
    feed.detach_publisher()
    feed.attach_publisher(lambda: True)
    feed.publish(b"c", 0)  # new connection, clock restarts
    pts = [(await track.recv()).pts for _ in range(3)]
    assert pts[0] < pts[1] < pts[2]
