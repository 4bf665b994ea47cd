"""Six ways a lesson's recording can be threatened; coverage must hold in each.

Each case runs a real lesson — controller and two synthetic classroom agents as real
processes on loopback — breaks one thing, and then checks the catalogue's coverage and
every stored segment's checksum (coverage_check.py).
"""

from __future__ import annotations

import json
import pathlib
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

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.timeout(420)]
LEAD, RECEIVER = "city-1-101", "village-1-201"
SEGMENT_S = 4.0


def _start_rig(rig: LessonRig) -> LessonRig:
    tokens = {cid: rig.add_classroom(cid) for cid in (LEAD, RECEIVER)}
    rig.start_controller()
    for cid, token in tokens.items():
        rig.enrol_and_start_agent(cid, token)
    rig.wait_online([LEAD, RECEIVER])
    return rig


@pytest.fixture
def rig(tmp_path: pathlib.Path) -> Iterator[LessonRig]:
    """Controller (local storage) and two agents."""
    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, prepare_s=3.0, segment_seconds=SEGMENT_S)
    try:
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


def test_agent_killed_mid_lesson_and_restarted(rig: LessonRig) -> None:
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
    check_lesson(rig, "1 agent SIGKILL + restart", lesson["id"], local_reader(rig), {LEAD: dead})
    COVERAGE_LINES.append(
        f"{'':<34} {LEAD}: process dead {respawned_at - killed_at:.2f} s, then start-up "
        f"until recording {startup:.2f} s"
    )
    parts = list(lesson_dir(rig, LEAD, lesson["id"]).glob("*/*.part"))
    assert not parts, f"open segments left unsalvaged: {parts}"


def test_controller_down_60s_in_lesson_and_during_upload(tmp_path: pathlib.Path) -> None:
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


def test_storage_cut_mid_upload_and_500_on_every_fifth_part(tmp_path: pathlib.Path) -> None:
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


def test_disk_fills_to_its_reserve(tmp_path: pathlib.Path, small_disk: pathlib.Path) -> None:
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


def test_agent_clock_two_minutes_wrong(tmp_path: pathlib.Path) -> None:
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


def test_two_lessons_back_to_back(rig: LessonRig) -> None:
    first = rig.schedule(LEAD, [RECEIVER], 6.0, 25.0)
    second = rig.schedule(LEAD, [RECEIVER], 0, 25.0, start=first["end_at"])
    assert second["start_at"] == first["end_at"], (first, second)
    _uploaded(rig, first, 100)
    _uploaded(rig, second, 100)
    check_lesson(rig, "6 back to back (first)", first["id"], local_reader(rig))
    check_lesson(rig, "6 back to back (second)", second["id"], local_reader(rig))
