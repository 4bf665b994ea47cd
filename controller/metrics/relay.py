"""The built-in relay's per-feed figures and its process's restarts, as Prometheus metrics.

A starved relay drops frames after the RTP layer, where the agents' loss figures cannot
see it (a lead heard 60 % of a room while every loss figure said 0 %). Each feed of each
lesson under way in this process reports what came in and what it dropped on the way
to its subscribers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.metrics.collector import PREFIX

# lesson id → the relay's stats(): "classroom/track" → counters
RelayStats = Callable[[], Mapping[str, Mapping[str, Mapping[str, int]]]]


class RelayCollector(Collector):
    """Frames in, frames dropped and subscribers of every feed this process relays."""

    def __init__(self, stats: RelayStats, restarts: Callable[[], int] | None = None) -> None:
        self._stats = stats
        self._restarts = restarts

    def collect(self) -> Iterator[Metric]:
        """The figures as they stand now."""
        labels = ["lesson", "feed"]
        frames = CounterMetricFamily(
            f"{PREFIX}_relay_frames_in", "Frames a relayed feed received", labels=labels
        )
        dropped = CounterMetricFamily(
            f"{PREFIX}_relay_frames_dropped",
            "Frames the relay dropped on the way to a feed's subscribers (behind, or "
            "waiting for a keyframe after a gap)",
            labels=labels,
        )
        subscribers = GaugeMetricFamily(
            f"{PREFIX}_relay_subscribers", "Subscribers of a relayed feed", labels=labels
        )
        for lesson, feeds in sorted(self._stats().items()):
            for feed, figures in sorted(feeds.items()):
                frames.add_metric([lesson, feed], figures.get("frames_in", 0))
                dropped.add_metric([lesson, feed], figures.get("dropped", 0))
                subscribers.add_metric([lesson, feed], figures.get("subscribers", 0))
        yield frames
        yield dropped
        yield subscribers
        if self._restarts is not None:
            yield CounterMetricFamily(
                f"{PREFIX}_relay_process_restarts",
                "Times the relay process died and was restarted (its lessons' agents re-offered)",
                value=self._restarts(),
            )
