"""A scheduled 1+1 lesson on real processes and sockets: controller plus two agents.

The tests of what the media path carries (delivery both ways, the heartbeats' live
figures, a controller restart mid-lesson) are parametrised over the media backend
(``backend``: the built-in relay, a real Janus); each Janus variant is skipped with the
name of its twin in tests/e2e/test_lesson_on_janus.py, or the reason it has none.
"""

from __future__ import annotations

import pathlib
import shutil
import time
from collections.abc import Iterator

import pytest
from benchlib.media_check import probe_recording
from benchlib.rig import LessonRig
from demo import summarise
from media_backends import (
    BOTH,
    assert_on_backend,
    builtin_only,
    janus_farm,  # noqa: F401 - the Janus variants' servers
    on_backend,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
LEAD, RECEIVER = "city-1-101", "village-1-201"


@pytest.fixture(params=BOTH)
def backend(request: pytest.FixtureRequest) -> str:
    """The media backend carrying the lessons."""
    return str(request.param)


@pytest.fixture
def rig(
    tmp_path: pathlib.Path, backend: str, request: pytest.FixtureRequest
) -> Iterator[LessonRig]:
    """A controller and two enrolled, running synthetic agents."""
    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, prepare_s=3.0)
    try:
        on_backend(request, rig, backend)
        tokens = {cid: rig.add_classroom(cid) for cid in (LEAD, RECEIVER)}
        rig.start_controller()
        for cid, token in tokens.items():
            rig.enrol_and_start_agent(cid, token)
        rig.wait_online([LEAD, RECEIVER])
        yield rig
    finally:
        rig.stop()


@builtin_only(
    "its Janus twin, with the same delivery and recording assertions and more, is "
    "tests/e2e/test_lesson_on_janus.py's first test"
)
def test_scheduled_lesson_is_relayed_both_ways_and_recorded(rig: LessonRig, backend: str) -> None:
    # Long enough that the first keyframe's wait (a fixed cost, up to about a second on
    # two busy test workers) does not by itself take a track under 90 % delivered.
    seconds = 12.0
    lesson = rig.schedule(LEAD, [RECEIVER], 4.0, seconds)
    doc = rig.wait_lesson(lesson["id"], ("uploaded", "failed"), 90)
    assert doc["state"] == "uploaded", doc["events"]
    assert_on_backend(doc, backend)
    checks = [probe_recording(pathlib.Path(r["path"]), seconds) for r in doc["recordings"]]
    summary = summarise(doc, checks)
    print(f"{backend}: delivery {summary['delivery_ratio']}, latency {summary['latency_ms']}")

    # every sent track reached the other side, in both directions
    assert set(summary["delivery_ratio"]) == {
        f"{LEAD}/teacher->{RECEIVER}",
        f"{LEAD}/panel->{RECEIVER}",
        f"{LEAD}/mic->{RECEIVER}",
        f"{RECEIVER}/student->{LEAD}",
        f"{RECEIVER}/mic->{LEAD}",
    }
    for key, ratio in summary["delivery_ratio"].items():
        assert ratio >= 0.9, f"{key} delivered only {ratio:.1%}"
    assert summary["latency_ms"]["p50"] is not None and summary["latency_ms"]["p50"] > 0

    # the lead records what it sends, the receiver what it receives; all stitched in storage
    # each classroom's microphone is recorded inside its camera's file
    stored = {
        (r["classroom"], r["track"]): c for r, c in zip(doc["recordings"], checks, strict=True)
    }
    assert set(stored) == {
        (LEAD, "teacher"),
        (LEAD, "panel"),
        (LEAD, f"{RECEIVER}-student"),
        (RECEIVER, f"{LEAD}-teacher"),
        (RECEIVER, f"{LEAD}-panel"),
        (RECEIVER, "student"),
    }
    for key, check in stored.items():
        assert check["ok"], (check["problems"], check["duration_s"], check["streams"])
        expected = ["h264"] if key[1].endswith("panel") else ["h264", "opus"]
        assert check["streams"] == expected, key
    # the lesson's transitions were logged in order
    states = [e["to"] for e in doc["events"] if e["to"]]
    assert states == ["scheduled", "preparing", "live", "ending", "recorded", "uploaded"]


@builtin_only(
    "CI time; on Janus the heartbeats' live figures are asserted by "
    "tests/e2e/test_lesson_on_janus.py, and the agent killed mid-lesson by the fault suite"
)
def test_other_side_keeps_recording_when_an_agent_disappears(rig: LessonRig) -> None:
    seconds = 10.0
    lesson = rig.schedule(LEAD, [RECEIVER], 3.0, seconds)
    rig.wait_lesson(lesson["id"], ("live",), 30)
    time.sleep(3.0)
    # heartbeats carry health and live media figures to the controller
    health = {c["id"]: c["health"] for c in rig.get("/classrooms")}
    lead_media = {(m["track"], m["direction"]): m for m in health[LEAD]["media"]}
    assert lead_media[("teacher", "send")]["fps"] > 20
    assert lead_media[("teacher", "send")]["bitrate_bps"] > 500_000
    assert lead_media[(f"{RECEIVER}-student", "recv")]["fps"] > 20
    assert health[LEAD]["devices"]["teacher"]["state"] == "ok"
    assert health[LEAD]["cpu_pct"] >= 0 and health[LEAD]["disk_free_bytes"] > 0
    # same machine, same clock: the NTP-style estimate must be near zero
    assert abs(health[LEAD]["clock_offset_ms"]) < 50 and health[LEAD]["rtt_ms"] >= 0
    rig.kill(RECEIVER)  # SIGKILL mid-lesson
    doc = rig.wait(
        "the lead's recordings in storage",
        lambda: (
            (d := rig.get(f"/lessons/{lesson['id']}"))
            and {r["track"] for r in d["recordings"] if r["classroom"] == LEAD}
            >= {"teacher", "panel"}
            and d
        ),
        60,
    )
    assert doc["state"] in ("ending", "recorded"), doc["state"]
    for rec in doc["recordings"]:
        if rec["classroom"] == LEAD and rec["track"] in ("teacher", "panel"):
            check = probe_recording(pathlib.Path(rec["path"]), seconds)
            assert check["ok"], check  # full length: the lead never stopped
    classrooms = {c["id"]: c for c in rig.get("/classrooms")}
    assert classrooms[LEAD]["online"] and not classrooms[RECEIVER]["online"]


@pytest.mark.parametrize("backend", ["builtin"])  # before any media: no backend takes part
def test_lesson_with_unknown_classroom_is_refused_clearly(rig: LessonRig) -> None:
    out = rig.controller_cli(
        "lesson",
        "add",
        "--lead",
        LEAD,
        "--receiver",
        "no-such-room",
        "--start",
        "+60s",
        "--duration",
        "40m",
        check=False,
    )
    assert out.returncode == 2
    assert "classroom 'no-such-room' does not exist" in out.stderr
    out = rig.controller_cli(
        "lesson",
        "add",
        "--lead",
        LEAD,
        "--receiver",
        RECEIVER,
        "--start",
        "tomorrow",
        "--duration",
        "40m",
        check=False,
    )
    assert out.returncode == 2 and "time 'tomorrow' is not valid" in out.stderr


@pytest.fixture(autouse=True)
def _needs_ffprobe() -> None:
    if shutil.which("ffprobe") is None:
        pytest.fail("ffprobe is missing: run scripts/bootstrap (installs Debian's ffmpeg)")


@builtin_only(
    "CI time; its Janus twin, the lesson back in the same room after the controller is "
    "killed, is tests/e2e/test_lesson_on_janus.py's "
    "test_a_controller_killed_mid_lesson_comes_back_to_the_same_room"
)
def test_controller_restart_mid_lesson_loses_no_local_recording(
    rig: LessonRig, backend: str
) -> None:
    seconds = 14.0
    lesson = rig.schedule(LEAD, [RECEIVER], 3.0, seconds)
    rig.wait_lesson(lesson["id"], ("live",), 30)
    time.sleep(3.0)
    rig.kill("controller")
    time.sleep(2.0)
    rig.start_controller()
    doc = rig.wait_lesson(lesson["id"], ("uploaded", "failed"), 90)
    assert doc["state"] == "uploaded", doc["events"]
    rejoins = [e for e in doc["events"] if e["detail"].endswith("cmd.join ok")]
    assert len(rejoins) == 4  # each agent joined, then re-joined the restarted controller
    assert_on_backend(doc, backend)
    for rec in doc["recordings"]:
        # Received tracks keep the outage as a gap, so every file spans the lesson. A
        # received track starts at the other room's first frame, which follows that room's
        # join: on the suite's loaded two cores that came up to 1.04 s later than here
        # alone, so it has 2 s. A room's own tracks must hold the whole lesson within 1 s.
        received = rec["track"].startswith((f"{LEAD}-", f"{RECEIVER}-"))
        check = probe_recording(pathlib.Path(rec["path"]), seconds, 2.0 if received else 1.0)
        assert check["ok"], (rec["classroom"], rec["track"], check["problems"], check["duration_s"])


def test_agent_killed_and_restarted_resumes_recording(tmp_path: pathlib.Path) -> None:
    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, prepare_s=3.0, segment_seconds=2.0)
    try:
        tokens = {cid: rig.add_classroom(cid) for cid in (LEAD, RECEIVER)}
        rig.start_controller()
        for cid, token in tokens.items():
            rig.enrol_and_start_agent(cid, token)
        rig.wait_online([LEAD, RECEIVER])
        seconds = 16.0
        lesson = rig.schedule(LEAD, [RECEIVER], 3.0, seconds)
        rig.wait_lesson(lesson["id"], ("live",), 30)
        time.sleep(5.0)
        track_dir = rig.root / RECEIVER / "recordings" / lesson["id"] / "student"
        before = {p.name: p.read_bytes() for p in track_dir.glob("*.mp4")}
        assert len(before) >= 2
        rig.kill(RECEIVER)  # SIGKILL, as systemd would see a crash
        time.sleep(1.0)
        rig.start_agent(RECEIVER)  # what Restart=on-failure does
        doc = rig.wait_lesson(lesson["id"], ("uploaded", "failed"), 90)
        assert doc["state"] == "uploaded", doc["events"]
        # no segment written before the crash was touched by the restarted agent
        for name, data in before.items():
            assert (track_dir / name).read_bytes() == data
        student = next(
            r for r in doc["recordings"] if r["classroom"] == RECEIVER and r["track"] == "student"
        )
        check = probe_recording(pathlib.Path(student["path"]), seconds)
        assert check["ok"], check  # spans the lesson, with the crash as a gap inside
        assert student["segments"] > len(before)
    finally:
        rig.stop()


@builtin_only(
    "the controller is down for the whole lesson, so nothing places it on Janus: each "
    "agent records from its cached schedule, whichever backend the controller would choose"
)
def test_lesson_is_recorded_while_the_controller_is_down(rig: LessonRig) -> None:
    seconds = 8.0
    lesson = rig.schedule(LEAD, [RECEIVER], 8.0, seconds)
    caches = [rig.root / cid / "schedule.json" for cid in (LEAD, RECEIVER)]
    rig.wait(
        "both agents to cache the lesson",
        lambda: all(p.exists() and lesson["id"] in p.read_text() for p in caches),
        10,
    )
    rig.kill("controller")  # down before the lesson starts, back after it ends
    time.sleep(8.0 + seconds + 3.0)
    rig.start_controller()
    doc = rig.wait_lesson(lesson["id"], ("uploaded",), 60)
    stored = {(r["classroom"], r["track"]): r for r in doc["recordings"]}
    assert {(LEAD, "teacher"), (LEAD, "panel"), (RECEIVER, "student")} <= set(stored)
    for rec in stored.values():
        check = probe_recording(pathlib.Path(rec["path"]), seconds)
        assert check["ok"], (check["problems"], check["duration_s"], check["streams"])
