"""Staged agent update with real processes: a controller, a classroom whose agent runs from
a releases folder under a stand-in for systemd (tests/peers/agent_supervisor.py: the boot
guard before each start, the ``current`` link, restart on exit), and two more classrooms
recording a lesson all along.

The agent is upgraded from this checkout's version to a test build and back, each signed
with a release key the controller never holds: real venvs, real ``pip install`` of the
wheel, the real signature check, the atomic switch and the restart. Then a build whose
cameras fail the health check is rolled back by the agent itself, and a wheel changed on
the controller is refused; each pauses its rollout at the pilot ring.

The new venvs take the wheel with ``--no-deps`` and reach third-party libraries through
``classbridge-deps.pth`` naming this checkout's .venv (install-agent's layout does the
same with /opt/classbridge/.venv): installing every dependency per test would take minutes.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sqlite3
import sys
import sysconfig
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from benchlib.rig import BIN, SYNTHETIC, LessonRig
from release_fixtures import build_wheel, make_key, sign_wheel

from controller.common.cli_common import open_db
from controller.releases import store
from edge_agent.updates import boot_guard, installer
from protocols.releases import UpdateOffer, load_public_key, sha256_hex

pytestmark = [pytest.mark.e2e, pytest.mark.solo, pytest.mark.timeout(420)]
PILOT, RECORDING, RECEIVING = "city-pilot", "city-recording", "village-receiving"
SUPERVISOR = pathlib.Path(__file__).parents[1] / "peers" / "agent_supervisor.py"
TAMPERED = "0.1.3"


@pytest.fixture
def setup(tmp_path: pathlib.Path) -> Iterator[dict[str, Any]]:
    dist = tmp_path / "dist"
    private, public = make_key(tmp_path / "release-machine")
    wheels = {
        "0.1.0": build_wheel(dist, "0.1.0"),  # this checkout, as installed today
        "0.1.1": build_wheel(dist, "0.1.1"),  # the test build
        # A build whose synthetic cameras and microphone fail to open: unhealthy.
        "0.1.2": build_wheel(
            dist,
            "0.1.2",
            {
                "edge_agent/checks.py": (
                    'return Check(name, True, "synthetic")',
                    'return Check(name, False, "synthetic driver broken in this build")',
                )
            },
        ),
        TAMPERED: build_wheel(dist, TAMPERED),
    }
    for wheel in wheels.values():
        sign_wheel(wheel, private)
    # The classroom PC as install-agent leaves it: the current release in its own venv.
    releases = tmp_path / "releases"
    releases.mkdir()
    first = wheels["0.1.0"]
    offer = UpdateOffer(
        rollout_id=0,
        version="0.1.0",
        filename=first.name,
        sha256=sha256_hex(first.read_bytes()),
        size=first.stat().st_size,
        signature=first.with_name(first.name + ".sig").read_text(),
        key_id="",
        health_deadline_s=60,
    )
    deps = pathlib.Path(sysconfig.get_paths()["purelib"])
    key = load_public_key(public.read_bytes(), str(public))
    venv = installer.install(releases, offer, first.read_bytes(), key, deps)
    boot_guard.switch(releases, venv)
    shutil.copyfile(boot_guard.__file__, releases / "boot_guard.py")

    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, segment_seconds=2.0)
    rig.env["CLASSBRIDGE_RELEASE_TICK_S"] = "0.5"
    try:
        pilot_token = rig.add_classroom(PILOT, school="city")
        recording_token = rig.add_classroom(RECORDING, school="city")
        receiving_token = rig.add_classroom(RECEIVING, school="village")
        # The test build through the command line; the others straight into the database
        # (each command costs seconds on a busy machine).
        rig.controller_cli("release", "trust-key", str(public))
        rig.controller_cli("release", "add", str(wheels["0.1.1"]), "--notes", "test build")
        with open_db(rig.controller_state)() as db:
            for version, wheel in wheels.items():
                if version != "0.1.1":
                    signature = wheel.with_name(wheel.name + ".sig").read_text()
                    store.add_release(db, wheel.name, wheel.read_bytes(), signature, [key], "t")
        rig.start_controller()
        state = rig.root / PILOT
        rig.cli(
            "classroom-agent",
            "enroll",
            "--controller",
            f"tcp://127.0.0.1:{rig.port}",
            "--token",
            pilot_token,
            "--state-dir",
            str(state),
        )
        rig.spawn(
            PILOT,
            sys.executable,
            str(SUPERVISOR),
            str(releases),
            str(state),
            "--",
            "run",
            "--state-dir",
            str(state),
            "--profile",
            str(SYNTHETIC),
            "--media-address",
            "127.0.0.1",
            env={
                "CLASSBRIDGE_RELEASES_DIR": str(releases),
                "CLASSBRIDGE_RELEASE_KEY": str(public),
                "CLASSBRIDGE_UPDATE_POLL_S": "1",
                "PATH": f"{BIN}:{os.environ['PATH']}",
            },
        )
        rig.enrol_and_start_agent(RECORDING, recording_token)
        rig.enrol_and_start_agent(RECEIVING, receiving_token)
        rig.wait_online([PILOT, RECORDING, RECEIVING], timeout=60)
        rig.controller_cli("release", "ring", PILOT, "pilot")
        yield {"rig": rig, "releases": releases}
    finally:
        rig.stop()


def _version(rig: LessonRig, room: str) -> str:
    rooms = {r["id"]: r for r in rig.get("/classrooms")}
    return str(rooms[room]["agent_version"]) if rooms[room]["online"] else ""


def _rollout(rig: LessonRig) -> dict[str, Any]:
    doc: dict[str, Any] = rig.get("/releases")["rollouts"][0]
    return doc


def _target(rollout: dict[str, Any], room: str) -> dict[str, Any]:
    return next(t for t in rollout["targets"] if t["classroom"] == room)


def _post(rig: LessonRig, path: str, doc: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        rig.api + path,
        data=json.dumps(doc or {}).encode(),
        method="POST",
        headers={**rig.auth_headers, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30, context=rig.ssl_context()) as resp:
        return json.loads(resp.read())


def _roll(rig: LessonRig, version: str, deadline_s: int = 90) -> int:
    window = {"window_start": "00:00", "window_end": "00:00", "timezone": "UTC"}
    doc = _post(
        rig, "/releases/rollouts", {"version": version, "health_deadline_s": deadline_s, **window}
    )
    return int(doc["id"])


def _cancel(rig: LessonRig) -> None:
    _post(rig, f"/releases/rollouts/{_rollout(rig)['id']}/cancel")


def _healthy_on(rig: LessonRig, releases: pathlib.Path, version: str) -> None:
    rig.wait(
        f"{PILOT} healthy on {version}",
        lambda: (
            _target(_rollout(rig), PILOT)["state"] == "healthy" and _version(rig, PILOT) == version
        ),
        120,
    )
    assert boot_guard.current_venv(releases) == (releases / version / "venv").resolve()


def test_upgrade_and_back_while_another_classroom_records_then_rollbacks(
    setup: dict[str, Any],
) -> None:
    rig, releases = setup["rig"], setup["releases"]
    assert _version(rig, PILOT) == "0.1.0"
    lesson = rig.schedule(RECORDING, [RECEIVING], lead_in_s=6, seconds=150)
    rig.wait_lesson(lesson["id"], ("live",), 30)

    # Up to the test build: pilot ring first; then the general ring, whose classrooms are
    # in a lesson, waits for it to end.
    _roll(rig, "0.1.1")
    _healthy_on(rig, releases, "0.1.1")
    rollout = rig.wait(
        "the rollout at the general ring",
        lambda: (r := _rollout(rig))["ring"] == "general" and r,
        30,
    )
    assert _target(rollout, RECORDING)["state"] == "pending", rollout
    assert _target(rollout, RECEIVING)["state"] == "pending", rollout
    assert rig.get(f"/lessons/{lesson['id']}")["state"] == "live"
    _cancel(rig)

    # And back to this checkout's version: the other classrooms run it already, so the
    # rollout is done once the pilot is healthy on it.
    _roll(rig, "0.1.0")
    _healthy_on(rig, releases, "0.1.0")
    rig.wait("the rollout of 0.1.0 done", lambda: _rollout(rig)["state"] == "done", 30)

    # A build that fails its health check: the agent rolls itself back; the rollout pauses.
    _roll(rig, "0.1.2", deadline_s=25)
    paused = rig.wait(
        "the rollout of 0.1.2 paused",
        lambda: (r := _rollout(rig))["state"] == "paused" and r,
        150,
    )
    assert paused["ring"] == "pilot", paused
    assert f"{PILOT} rolled back" in paused["paused_reason"], paused
    assert "failed its health check (devices)" in paused["paused_reason"], paused
    rig.wait("the pilot back on 0.1.0", lambda: _version(rig, PILOT) == "0.1.0", 60)
    assert boot_guard.current_venv(releases) == (releases / "0.1.0" / "venv").resolve()
    _cancel(rig)

    # A wheel changed on the controller (its hash updated too): the signature refuses it.
    db = sqlite3.connect(rig.controller_state / "controller.sqlite3")
    wheel = db.execute("SELECT wheel FROM agent_release WHERE version = ?", (TAMPERED,))
    changed = bytes(wheel.fetchone()[0]) + b"\0"
    db.execute(
        "UPDATE agent_release SET wheel = ?, sha256 = ?, size = ? WHERE version = ?",
        (changed, sha256_hex(changed), len(changed), TAMPERED),
    )
    db.commit()
    db.close()
    _roll(rig, TAMPERED)
    paused = rig.wait(
        f"the rollout of {TAMPERED} paused",
        lambda: (r := _rollout(rig))["state"] == "paused" and r,
        60,
    )
    assert f"{PILOT} failed" in paused["paused_reason"], paused
    assert "does not verify with release key" in paused["paused_reason"], paused
    assert not (releases / TAMPERED).exists()
    assert _version(rig, PILOT) == "0.1.0"
    assert boot_guard.current_venv(releases) == (releases / "0.1.0" / "venv").resolve()

    # The other classrooms recorded their whole lesson meanwhile.
    rig.wait_lesson(lesson["id"], ("recorded", "uploaded"), 120)
    # Both rooms' recordings: each uploads on its own, and the first can be catalogued
    # while the other is still on its way (a clean-clone run read the catalogue then).
    rig.wait(
        "both rooms' recordings catalogued",
        lambda: (
            {r["classroom"] for r in rig.catalogue(lesson["id"])["classrooms"]}
            == {RECORDING, RECEIVING}
        ),
        90,
    )
    # What the test is about: the updates beside the lesson cost it no recording. A frame
    # or two short here and there is the busy test machine (three agents, pip installs and
    # other work on 2 cores), so the bar is no gap of a second and 98 %, not the fault
    # suite's 99.5 %.
    catalogue = rig.catalogue(lesson["id"])
    rooms = {room["classroom"]: room["coverage"] for room in catalogue["classrooms"]}
    assert set(rooms) == {RECORDING, RECEIVING}, rooms
    for room, coverage in rooms.items():
        own = [t for t in coverage["tracks"] if t["direction"] == "send" and t["kind"] == "video"]
        assert own, f"{room} recorded no camera"
        for track in own:
            ratio = track["covered_s"] / coverage["scheduled_s"]
            longest = max((g["seconds"] for g in track["gaps"]), default=0.0)
            assert ratio >= 0.98 and longest < 1.0, (room, track.get("key"), ratio, track["gaps"])
