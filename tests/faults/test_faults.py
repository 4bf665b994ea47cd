"""Six ways a lesson's recording can be threatened; coverage must hold in each.

Each case runs a real lesson — controller and two synthetic classroom agents as real
processes on loopback — breaks one thing, and then checks the catalogue's coverage and
every stored segment's checksum (coverage_check.py).

Each case is parametrised over the media backend (issue 13): ``builtin``, the controller's
own relay, and ``janus``, a real Janus in a network namespace. The faults whose outcome
the media path takes part in run on both; the others say why their Janus variant is
skipped. The faults of Janus itself are in ``test_janus_faults.py``.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest
from benchlib.faulty_proxy import faulty_proxy
from benchlib.rig import LessonRig
from benchlib.s3_server import s3_server
from fault_coverage import COVERAGE_LINES, check_lesson, lesson_dir, local_reader
from media_backends import BOTH, assert_on_backend, builtin_only, on_backend

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.timeout(420)]
LEAD, RECEIVER = "city-1-101", "village-1-201"
SEGMENT_S = 4.0
# Why a fault's Janus variant is not run: the fault is off the media path, so the backend
# changes nothing the case measures; or it is too long for CI (the second phase already
# takes about 25 minutes) and a cheaper test covers the same on Janus.
OFF_MEDIA_PATH = (
    "the fault is between {where}; the media backend takes no part, and the agents record "
    "from their own encoders whichever backend carries the lesson"
)


def _start_rig(rig: LessonRig) -> LessonRig:
    tokens = {cid: rig.add_classroom(cid) for cid in (LEAD, RECEIVER)}
    rig.start_controller()
    for cid, token in tokens.items():
        rig.enrol_and_start_agent(cid, token)
    rig.wait_online([LEAD, RECEIVER])
    return rig


@pytest.fixture(params=BOTH)
def backend(request: pytest.FixtureRequest) -> str:
    """The media backend carrying the case's lesson."""
    return str(request.param)


@pytest.fixture
def rig(
    tmp_path: pathlib.Path, backend: str, request: pytest.FixtureRequest
) -> Iterator[LessonRig]:
    """Controller (local storage) and two agents, the lessons on ``backend``."""
    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, prepare_s=3.0, segment_seconds=SEGMENT_S)
    try:
        on_backend(request, rig, backend)
        yield _start_rig(rig)
    finally:
        rig.stop()


def _start_of(lesson: dict[str, Any]) -> float:
    return datetime.fromisoformat(lesson["start_at"]).timestamp()


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def _uploaded(rig: LessonRig, lesson: dict[str, Any], timeout: float) -> dict[str, Any]:
    doc: dict[str, Any] = rig.wait_lesson(lesson["id"], ("uploaded",), timeout)
    return doc


def _runs(rig: LessonRig, classroom: str, lesson_id: str) -> list[dict[str, Any]]:
    path = lesson_dir(rig, classroom, lesson_id) / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_agent_killed_mid_lesson_and_restarted(rig: LessonRig, backend: str) -> None:
    seconds = 60.0
    lesson = rig.schedule(LEAD, [RECEIVER], 6.0, seconds)
    start = _start_of(lesson)
    _sleep_until(start + 15.0)
    killed_at = time.time()
    rig.kill(LEAD, signal.SIGKILL)
    time.sleep(2.0)  # systemd's RestartSec would be here
    respawned_at = time.time()
    rig.start_agent(LEAD)
    _uploaded(rig, lesson, seconds + 90)
    # The restarted process is not recording until it has started up; the run log says
    # when its recorder was running again.
    resumed_s = [r["started_s"] for r in _runs(rig, LEAD, lesson["id"]) if "started_s" in r][-1]
    dead = resumed_s - (killed_at - start)
    startup = resumed_s - (respawned_at - start)
    doc = rig.get(f"/lessons/{lesson['id']}")
    assert_on_backend(doc, backend)
    case = f"1 agent SIGKILL + restart ({backend})"
    check_lesson(rig, case, lesson["id"], local_reader(rig), {LEAD: dead})
    COVERAGE_LINES.append(
        f"{'':<34} {LEAD}: process dead {respawned_at - killed_at:.2f} s, then start-up "
        f"until recording {startup:.2f} s"
    )
    parts = list(lesson_dir(rig, LEAD, lesson["id"]).glob("*/*.part"))
    assert not parts, f"open segments left unsalvaged: {parts}"


@builtin_only(
    "CI time: 3.5 min long; a controller killed mid-lesson on Janus is "
    "tests/e2e/test_lesson_on_janus.py's "
    "test_a_controller_killed_mid_lesson_comes_back_to_the_same_room"
)
def test_controller_down_60s_in_lesson_and_during_upload(
    tmp_path: pathlib.Path, backend: str
) -> None:
    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, prepare_s=3.0, segment_seconds=SEGMENT_S)
    # A slow idle upload, so the upload after the lesson is still running when the
    # controller goes down the second time.
    rig.agent_env[LEAD] = {"CLASSBRIDGE_UPLOAD_IDLE_KBPS": "4000"}
    try:
        _start_rig(rig)
        seconds = 75.0
        lesson = rig.schedule(LEAD, [RECEIVER], 6.0, seconds)
        start = _start_of(lesson)
        _sleep_until(start + 8.0)
        rig.kill("controller", signal.SIGKILL)
        time.sleep(60.0)
        rig.start_controller()
        _sleep_until(start + seconds + 4.0)
        pending_before = _pending_uploads(rig, LEAD)
        rig.kill("controller", signal.SIGKILL)
        time.sleep(20.0)
        rig.start_controller()
        back = time.monotonic()
        _uploaded(rig, lesson, 180)
        took = time.monotonic() - back
        assert pending_before > 0, "the upload had finished before the second outage"
        print(f"uploaded {took:.1f} s after the controller came back")
        check_lesson(rig, "2 controller down 60 s + in upload", lesson["id"], local_reader(rig))
    finally:
        rig.stop()


def _pending_uploads(rig: LessonRig, classroom: str) -> int:
    out = rig.cli("classroom-agent", "status", "--json", "--state-dir", str(rig.root / classroom))
    return len(json.loads(out.stdout)["pending_uploads"])


@builtin_only(OFF_MEDIA_PATH.format(where="the agents' uploads and storage"))
def test_storage_cut_mid_upload_and_500_on_every_fifth_part(
    tmp_path: pathlib.Path, backend: str
) -> None:
    with s3_server() as server, faulty_proxy(server.endpoint, fail_every=5) as proxy:
        rig = LessonRig(
            tmp_path / "rig",
            heartbeat_s=0.5,
            prepare_s=3.0,
            segment_seconds=SEGMENT_S,
            storage_url=f"s3://classbridge-faults/county?endpoint={proxy.endpoint}",
        )
        try:
            _start_rig(rig)
            seconds = 40.0
            lesson = rig.schedule(LEAD, [RECEIVER], 6.0, seconds)
            start = _start_of(lesson)
            _sleep_until(start + 14.0)
            proxy.cut()
            time.sleep(12.0)
            proxy.restore()
            _uploaded(rig, lesson, seconds + 120)
            s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")

            def read(key: str) -> bytes:
                body: bytes = s3.get_object(Bucket="classbridge-faults", Key=f"county/{key}")[
                    "Body"
                ].read()
                return body

            check_lesson(rig, "3 storage cut + 500 on 1 part in 5", lesson["id"], read)
            assert proxy.failed_parts > 0 and proxy.refused + proxy.aborted > 0
        finally:
            rig.stop()


@pytest.fixture
def small_disk(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A 192 MB tmpfs for the lead agent's state (needs root to mount)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=192m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@builtin_only(OFF_MEDIA_PATH.format(where="the lead agent and its own disk"))
def test_disk_fills_to_its_reserve(
    tmp_path: pathlib.Path, small_disk: pathlib.Path, backend: str
) -> None:
    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, prepare_s=3.0, segment_seconds=SEGMENT_S)
    # The lead's state directory lives on the small disk.
    (rig.root).mkdir(parents=True, exist_ok=True)
    (rig.root / LEAD).symlink_to(small_disk, target_is_directory=True)
    rig.agent_env[LEAD] = {"CLASSBRIDGE_DISK_RESERVE_MB": "64"}
    try:
        _start_rig(rig)
        first = rig.schedule(LEAD, [RECEIVER], 5.0, 15.0)
        _uploaded(rig, first, 90)
        first_files = list(lesson_dir(rig, LEAD, first["id"]).glob("*/*.mp4"))
        assert first_files
        # Fill the disk until only the reserve plus 10 MB is free: less than the next
        # lesson needs, even after evicting the first lesson (uploaded and verified).
        free = shutil.disk_usage(small_disk).free
        ballast = small_disk / "ballast"
        with open(ballast, "wb") as fh:
            fh.write(b"\0" * (free - (64 + 10) * 1024 * 1024))
        lesson = rig.schedule(LEAD, [RECEIVER], 12.0, 30.0)
        start = _start_of(lesson)

        def alert() -> Any:
            rooms = {r["id"]: r for r in rig.get("/classrooms")}
            return (rooms[LEAD]["health"].get("alerts") or {}).get("disk_low")

        message = rig.wait("the disk_low alert before the lesson", alert, 10)
        assert time.time() < start, "the alert came only after the lesson had started"
        assert "reserve" in message and "Free space" in message
        assert not any(p.exists() for p in first_files), "verified recordings were not evicted"
        _uploaded(rig, lesson, 120)
        check_lesson(rig, "4 disk fills to its reserve", lesson["id"], local_reader(rig))
    finally:
        rig.stop()


@builtin_only(OFF_MEDIA_PATH.format(where="the lead agent's clock and the controller's schedule"))
def test_agent_clock_two_minutes_wrong(tmp_path: pathlib.Path, backend: str) -> None:
    if shutil.which("faketime") is None:
        pytest.fail("faketime is missing; scripts/bootstrap installs it")
    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, prepare_s=3.0, segment_seconds=SEGMENT_S)
    rig.agent_prefix[LEAD] = ["faketime", "-f", "+120s"]
    rig.agent_env[LEAD] = {"DONT_FAKE_MONOTONIC": "1"}
    try:
        _start_rig(rig)

        def offset() -> Any:
            rooms = {r["id"]: r for r in rig.get("/classrooms")}
            return rooms[LEAD]["health"].get("clock_offset_ms")

        measured = rig.wait("the clock offset measured", offset, 20)
        assert -121_000 < measured < -119_000, measured
        lesson = rig.schedule(LEAD, [RECEIVER], 6.0, 30.0)
        _uploaded(rig, lesson, 120)
        check_lesson(rig, "5 agent clock 2 min wrong", lesson["id"], local_reader(rig))
    finally:
        rig.stop()


@builtin_only(
    "CI time: about 100 s more in the second phase (it passed on Janus, 99.6 % coverage); "
    "a lesson's room of its own, destroyed at its end, is tests/e2e/test_lesson_on_janus.py"
)
def test_two_lessons_back_to_back(rig: LessonRig, backend: str) -> None:
    first = rig.schedule(LEAD, [RECEIVER], 6.0, 25.0)
    second = rig.schedule(LEAD, [RECEIVER], 0, 25.0, start=first["end_at"])
    assert second["start_at"] == first["end_at"], (first, second)
    docs = [_uploaded(rig, first, 100), _uploaded(rig, second, 100)]
    for doc in docs:
        assert_on_backend(doc, backend)
    if backend == "janus":
        # Each lesson had a room of its own, and the first one's was destroyed.
        rooms = [_room_of(doc) for doc in docs]
        assert rooms[0] != rooms[1], rooms
        for doc, room in zip(docs, rooms, strict=True):
            events = [str(e["detail"]) for e in doc["events"]]
            assert any(e.endswith(f"room {room} on county-a destroyed") for e in events), events
    check_lesson(rig, f"6 back to back (first, {backend})", first["id"], local_reader(rig))
    check_lesson(rig, f"6 back to back (second, {backend})", second["id"], local_reader(rig))


def _room_of(doc: dict[str, Any]) -> str:
    """The Janus room the media plane placed the lesson in (its events say)."""
    for event in doc["events"]:
        found = re.search(r"media plane: room (\S+) on Janus instance", str(event["detail"]))
        if found:
            return found.group(1)
    raise AssertionError(f"lesson {doc['id']} was not placed on Janus: {doc['events']}")
