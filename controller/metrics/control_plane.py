"""This controller process's own control-plane counters, as Prometheus metrics.

Unlike ``collector.ControllerCollector`` these are not read from the database: each
controller reports its own heartbeat writer (batches committed, classrooms written,
errors, backlog) and its presence (agents declared offline, and revived after being late).
``scripts/bench-control-plane`` reads them to check that heartbeats are written at most
once a second and that no beating agent was declared offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.metrics.collector import PREFIX


class WriterCounts(Protocol):
    """What ``controller.agents.heartbeat_writer.HeartbeatWriter`` counts."""

    batches: int
    written: int
    quiet_skipped: int
    errors: int
    batch_seconds: float
    batch_seconds_max: float

    @property
    def backlog(self) -> int:
        """Classrooms with news not yet written."""
        ...


class PresenceCounts(Protocol):
    """What ``controller.agents.presence.Presence`` counts."""

    declared_offline: int
    revived: int


class ControlPlaneCollector(Collector):
    """Counters of one controller process's heartbeat writer and presence."""

    def __init__(self, writer: WriterCounts, presence: PresenceCounts) -> None:
        self._writer = writer
        self._presence = presence

    def collect(self) -> Iterator[Metric]:
        """The counters as they stand now."""
        w, p = self._writer, self._presence
        yield CounterMetricFamily(
            f"{PREFIX}_heartbeat_batches",
            "Heartbeat batches this controller committed (one transaction each)",
            value=w.batches,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_heartbeat_rows_written",
            "Classrooms written by this controller's heartbeat batches",
            value=w.written,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_heartbeat_quiet_skipped",
            "Quiet heartbeats this controller did not write, their classroom's row being "
            "fresh enough (refreshed at least every 15 s)",
            value=w.quiet_skipped,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_heartbeat_write_errors",
            "Heartbeat rows, and batches, this controller failed to write",
            value=w.errors,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_heartbeat_batch_seconds",
            "Wall time of this controller's heartbeat batch transactions, summed",
            value=w.batch_seconds,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_heartbeat_batch_seconds_max",
            "The longest heartbeat batch transaction since start (on SQLite, the longest "
            "an API write could wait behind it)",
            value=w.batch_seconds_max,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_heartbeat_backlog",
            "Classrooms whose news this controller has not written yet",
            value=w.backlog,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_agents_declared_offline",
            "Agents this controller declared offline after a silence past the time-to-dead",
            value=p.declared_offline,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_agents_revived",
            "Agents declared offline whose heartbeats resumed soon after (they were late)",
            value=p.revived,
        )
