"""The database lost mid-lesson: the leading controller carries on degraded, the lesson
keeps its media and both rooms keep recording, and the controller recovers by itself when
the database is back. A real PostgreSQL server of this test (stopped and started again),
a real controller process and two real synthetic agents."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from benchlib.cluster_rig import ClusterRig
from pg_server import PgServer, PostgresMissing, start_server

pytestmark = [pytest.mark.solo, pytest.mark.timeout(300)]
LEAD, RECEIVER = "city-1-101", "village-1-201"
OUTAGE_S = 15.0


@pytest.fixture
def own_pg() -> Iterator[PgServer]:
    """A PostgreSQL server this test alone may stop (not the session's shared one)."""
    try:
        server = start_server()
    except PostgresMissing as err:
        pytest.skip(f"PostgreSQL is not installed: {err}")
    try:
        yield server
    finally:
        server.stop()


def _health(rig: ClusterRig) -> dict[str, Any]:
    doc: dict[str, Any] = rig.member_get(rig.members[0], "/../../healthz")
    return doc


def test_lesson_keeps_media_and_recordings_through_a_database_outage(
    own_pg: PgServer, tmp_path: Any
) -> None:
    url = own_pg.url(own_pg.create_database())
    rig = ClusterRig(url, count=1, root=tmp_path, heartbeat_s=1.0, prepare_s=2.0)
    try:
        tokens = {cid: rig.add_classroom(cid) for cid in (LEAD, RECEIVER)}
        rig.start_controller()
        for cid, token in tokens.items():
            rig.enrol_and_start_agent(cid, token)
        rig.wait_online([LEAD, RECEIVER], 60)
        assert _health(rig)["degraded"] is False
        seconds = 45.0
        lesson = rig.schedule(LEAD, [RECEIVER], 4.0, seconds)
        rig.wait_lesson(lesson["id"], ("live",), 60)
        time.sleep(5.0)

        own_pg.pause()
        paused = time.monotonic()
        seen = rig.wait(
            "the controller to report itself degraded", lambda: _health(rig)["degraded"], 10
        )
        assert seen
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - paused)))
        own_pg.resume()
        rig.wait("the controller to recover by itself", lambda: not _health(rig)["degraded"], 20)
        health = _health(rig)
        assert health["leadership"]["leader"] is True, health

        doc = rig.wait_lesson(lesson["id"], ("uploaded", "failed"), 120)
        assert doc["state"] == "uploaded", doc["events"][-6:]
        rooms = {r["classroom"]: r for r in rig.catalogue(lesson["id"])["classrooms"]}
        for cid in (LEAD, RECEIVER):
            # Each room recorded its own cameras throughout…
            assert rooms[cid]["coverage"]["ratio"] >= 0.97, rooms[cid]["coverage"]
            # …and what it received from the other: the media flowed through the outage.
            received = [
                t
                for t in rooms[cid]["coverage"]["tracks"]
                if t["direction"] == "recv" and t["kind"] == "video"
            ]
            assert received, rooms[cid]["coverage"]["tracks"]
            for track in received:
                assert track["ratio"] >= 0.9, (cid, track["key"], track["covered_s"], track["gaps"])
                long_gaps = [g for g in track["gaps"] if g["seconds"] > 2.0]
                assert not long_gaps, (cid, track["key"], long_gaps)
    finally:
        rig.stop()
