"""scripts/bench-control-plane with two controllers on PostgreSQL, on a small fleet: the
fleet split between them, commands routed, and the leader's failover timed."""

from __future__ import annotations

import pathlib

import pytest
from bench_control_plane import Settings, run

pytestmark = [pytest.mark.e2e, pytest.mark.solo, pytest.mark.timeout(240)]


def test_two_controllers_serve_the_fleet_and_the_failover_is_timed(
    pg_url: str, tmp_path: pathlib.Path
) -> None:
    settings = Settings(
        agents=12,
        heartbeat_s=1.0,
        duration_s=4.0,
        commands_per_s=3.0,
        settle_s=1.5,
        controllers=2,
        database=pg_url,
        failover_lead_in_s=10.0,
    )
    doc = run(settings, tmp_path)
    assert doc["database"] == "postgresql" and doc["controllers"] == 2, doc
    assert len(doc["controller_cpu_pct_each"]) == 2 and doc["sim_processes"] == 2, doc
    # Commands all go to the first controller: the other's agents answer through routing.
    assert doc["commands"] >= 9 and doc["command_failures"] == 0, doc
    assert doc["offline_false"] == 0 and doc["not_registered"] == 0, doc
    assert doc["failover_s"] is not None and 0 <= doc["failover_s"] < 10, doc
