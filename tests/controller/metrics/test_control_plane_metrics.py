"""The controller process's own counters in /api/v1/metrics: heartbeat batches, offlines."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.agents.health_history import HealthSampler
from controller.agents.heartbeat_writer import HeartbeatWriter
from controller.agents.presence import Presence
from controller.metrics.control_plane import ControlPlaneCollector
from protocols.messages import Heartbeat


def test_batches_backlog_and_offline_declarations_are_exposed() -> None:
    writer = HeartbeatWriter(sessions=None, history=HealthSampler(), on_offline=print)  # type: ignore[arg-type]
    presence = Presence(heartbeat_interval=0.01)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ControlPlaneCollector(writer, presence))
    writer.batches, writer.written = 7, 70
    writer.batch_seconds, writer.batch_seconds_max = 1.4, 0.5
    writer.beat("a", Heartbeat(seq=1, cpu_pct=1, mem_pct=1, disk_free_bytes=1, disk_pct=1))
    presence.registered("a", None)
    time.sleep(0.05)
    assert presence.sweep() == ["a"]
    got = {
        s.name: s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert got["classbridge_heartbeat_batches_total"] == 7
    assert got["classbridge_heartbeat_rows_written_total"] == 70
    assert got["classbridge_heartbeat_write_errors_total"] == 0
    assert got["classbridge_heartbeat_backlog"] == 1
    assert got["classbridge_heartbeat_batch_seconds_total"] == 1.4
    assert got["classbridge_heartbeat_batch_seconds_max"] == 0.5
    assert got["classbridge_agents_declared_offline_total"] == 1
    assert got["classbridge_agents_revived_total"] == 0
