"""Leadership and routing of one controller among several, as Prometheus metrics
(``classbridge_orchestrator_leader`` is 1 on the leader)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.metrics.collector import PREFIX

if TYPE_CHECKING:
    from controller.cluster.node import ClusterNode


class ClusterCollector(Collector):
    """This controller's leadership and routed commands."""

    def __init__(self, node: ClusterNode) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        """The figures as they stand now."""
        status = self._node.leadership.status()
        yield GaugeMetricFamily(
            f"{PREFIX}_orchestrator_leader",
            "1 while this controller runs the orchestrator (holds the leader's lock)",
            value=1 if status.leader else 0,
        )
        info = GaugeMetricFamily(
            f"{PREFIX}_orchestrator_leader_node",
            "The controller that holds the leader's lock, as this one sees it",
            labels=["node", "leader_node"],
        )
        info.add_metric([status.node, status.leader_node or ""], 1)
        yield info
        yield GaugeMetricFamily(
            f"{PREFIX}_degraded",
            "1 while this controller cannot reach its database (a leader keeps the lessons "
            "under way; nothing starts or ends until it is back)",
            value=1 if status.degraded_since is not None else 0,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_database_lost",
            "Times this controller lost its database and carried on degraded",
            value=status.degraded_times,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_orchestrator_takeovers",
            "Times this controller became the orchestrator leader",
            value=status.takeovers,
        )
        counters = self._node.router.counters
        for name, value, doc in (
            ("routed_commands", counters.routed, "Commands sent to agents on other controllers"),
            ("routed_delivered", counters.delivered, "Commands delivered for other controllers"),
            ("routed_timeouts", counters.timeouts, "Routed commands nobody answered in time"),
            ("routed_refused", counters.refused, "Messages too large to route"),
        ):
            yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=value)
