"""scripts/bench-control-plane on a small fleet: the simulated agents are really online.

Twenty simulated agents (CURVE DEALERs with enrolled keys: in bulk through the
controller's registry, or each over the enrolment socket) register with a real controller
process, beat every second and answer remote actions sent through the console's route. The
controller's own records must show it: every classroom registered by the simulator's
agent version, its heartbeats written to the database, none declared offline, and each
action answered by the agent it was sent to.
"""

from __future__ import annotations

import pathlib

import pytest
from bench_control_plane import Settings, run
from sqlalchemy import select

from controller.db.models import Classroom
from controller.db.session import database_url, make_engine, sessions

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


@pytest.mark.parametrize("enrol", ["bulk", "wire"])
def test_a_small_fleet_registers_beats_and_answers_through_the_real_path(
    tmp_path: pathlib.Path, enrol: str
) -> None:
    settings = Settings(
        agents=20, heartbeat_s=1.0, duration_s=4.0, commands_per_s=4.0, settle_s=1.5, enrol=enrol
    )
    doc = run(settings, tmp_path)
    assert doc["enrolled_over_wire"] == (20 if enrol == "wire" else 0), doc
    assert doc["commands"] >= 12 and doc["command_failures"] == 0, doc
    assert doc["command_rtt_p99_ms"] is not None
    assert doc["offline_false"] == 0 and doc["not_registered"] == 0, doc
    # Every agent beat about once a second, and the controller answered each beat.
    assert doc["heartbeats_per_s"] >= 15 and doc["heartbeat_acks_per_s"] >= 15, doc
    assert 0 < doc["heartbeat_batches_per_s"] <= 1.0, doc
    assert doc["heartbeat_quiet_skipped_per_s"] >= 10, doc  # quiet rooms: not every beat
    assert doc["failover_s"] is None and doc["database"] == "sqlite"
    with sessions(make_engine(database_url(tmp_path / "controller")))() as db:
        rooms = db.scalars(select(Classroom).where(Classroom.id.like("sim-%"))).all()
    assert len(rooms) == 20
    for room in rooms:
        # Registered (only a Register on a key-authenticated route sets the version) and
        # beating: the controller wrote its heartbeats up to the first quiet one (clock
        # measured, nothing to report); later quiet ones wait for the 15 s refresh.
        assert room.agent_version == "bench-sim" and room.last_seen_at is not None
        assert room.health["seq"] >= 2, (room.id, room.health)
        assert room.health["readiness"] == {} and room.health["rtt_ms"] is not None
