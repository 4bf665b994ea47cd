"""The relay's per-feed figures in /api/v1/metrics: what came in, and what it dropped."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.metrics.relay import RelayCollector
from controller.relay.feed import QUEUE_LIMIT
from controller.relay.room import LessonRelay

KEY = b"\x00\x00\x00\x01\x65" + b"\x00" * 16  # an IDR slice
DELTA = b"\x00\x00\x00\x01\x41" + b"\x00" * 16


def test_a_starved_subscriber_shows_as_dropped_frames() -> None:
    relay = LessonRelay("l1")
    feed = relay.feed("lead", "teacher", "video")
    feed.attach_publisher(lambda: True)
    feed.subscribe()  # never read: it falls behind
    feed.publish(KEY, 0)
    for i in range(1, QUEUE_LIMIT + 5):
        feed.publish(DELTA, i * 3000)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RelayCollector(lambda: {"l1": relay.stats()}))
    got = {
        (s.name, s.labels.get("feed")): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert got[("classbridge_relay_frames_in_total", "lead/teacher")] == QUEUE_LIMIT + 5
    assert got[("classbridge_relay_frames_dropped_total", "lead/teacher")] >= QUEUE_LIMIT - 1
    assert got[("classbridge_relay_subscribers", "lead/teacher")] == 1
