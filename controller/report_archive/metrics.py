"""The report scheduler's counts as Prometheus metrics: a report that keeps failing shows
in the fleet's monitoring, not only in the controller's log."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.metrics.collector import PREFIX
from controller.report_archive.scheduler import ReportScheduler


class ReportArchiveCollector(Collector):
    """Reports this controller wrote on schedule, and the runs that failed."""

    def __init__(self, scheduler: ReportScheduler) -> None:
        self._scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        """The counts as they stand now."""
        yield CounterMetricFamily(
            f"{PREFIX}_reports_written",
            "Monthly and term reports written into storage on schedule",
            value=self._scheduler.written,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_report_failures",
            "Scheduled report runs that failed (each is tried again next pass)",
            value=self._scheduler.failures,
        )
