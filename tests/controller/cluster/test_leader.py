"""One orchestrator leader among two real controller processes on a real PostgreSQL."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from benchlib.cluster_rig import ClusterRig

# Two controller processes and their timing: alone, in phase 2.
pytestmark = [pytest.mark.solo, pytest.mark.timeout(240)]


def _transitions(rig: ClusterRig, lesson_id: str, to: str) -> list[datetime]:
    doc = rig.get(f"/lessons/{lesson_id}")
    return [datetime.fromisoformat(e["at"]) for e in doc["events"] if e["to"] == to]


def test_one_leader_and_the_other_takes_over_when_it_is_killed(cluster: ClusterRig) -> None:
    rig = cluster
    for room in ("lead-room", "far-room"):
        rig.add_classroom(room)
    leader = rig.leader()
    other = next(m for m in rig.members if m is not leader)
    assert rig.is_leader(other) is False
    names = rig.get("/metrics")
    assert "classbridge_orchestrator_leader_node" in names

    # While both run, only the leader moves lessons: each transition happens once.
    first = rig.schedule("lead-room", ["far-room"], lead_in_s=2, seconds=2)
    rig.wait_lesson(first["id"], ("ending", "recorded", "uploaded", "failed"), 20)
    assert len(_transitions(rig, first["id"], "preparing")) == 1
    assert len(_transitions(rig, first["id"], "live")) == 1
    other_log = (rig.logs / f"{other.name}.log").read_text()
    assert "orchestrator leader now" not in other_log
    assert f"lesson {first['id']}" not in other_log  # it commanded nothing

    # The leader dies; a lesson due 2 s later is started by the other within 10 s.
    second = rig.schedule("lead-room", ["far-room"], lead_in_s=3, seconds=30)
    killed_at = time.time()
    rig.kill_member(leader)
    rig.wait_lesson(second["id"], ("live",), 20)
    due = datetime.fromisoformat(second["start_at"]).timestamp()
    (live_at,) = _transitions(rig, second["id"], "live")
    assert live_at.timestamp() - max(due, killed_at) < 10
    assert rig.is_leader(other) is True
    assert "orchestrator leader now" in (rig.logs / f"{other.name}.log").read_text()
    assert len(_transitions(rig, second["id"], "preparing")) == 1


def test_a_restarted_controller_waits_while_another_leads(cluster: ClusterRig) -> None:
    rig = cluster
    leader = rig.leader()
    other = next(m for m in rig.members if m is not leader)
    rig.kill_member(leader)
    assert rig.leader() is other
    rig.start_member(leader)  # back, and the other still leads
    time.sleep(2.5)
    assert rig.is_leader(leader) is False
    assert rig.is_leader(other) is True
