"""``classroom-agent record start|stop`` on a running agent, catalogued by the controller."""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from benchlib.media_check import probe_recording
from benchlib.rig import LessonRig

from protocols.manifest import Manifest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
ROOM = "city-1-101"


@pytest.fixture
def rig(tmp_path: pathlib.Path) -> Iterator[LessonRig]:
    """A controller and one enrolled, running synthetic agent."""
    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, segment_seconds=2.0)
    try:
        token = rig.add_classroom(ROOM)
        rig.start_controller()
        rig.enrol_and_start_agent(ROOM, token)
        rig.wait_online([ROOM])
        yield rig
    finally:
        rig.stop()


def _record(rig: LessonRig, action: str) -> tuple[int, dict[str, object]]:
    state = str(rig.root / ROOM)
    out = rig.cli("classroom-agent", "record", action, "--state-dir", state, "--json", check=False)
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1])


def test_manual_recording_is_made_uploaded_and_catalogued(rig: LessonRig) -> None:
    code, doc = _record(rig, "stop")
    assert code == 1 and "nothing is recording" in str(doc["message"])

    code, doc = _record(rig, "start")
    assert code == 0, doc
    lesson_id = str(doc["lesson"])
    assert lesson_id.startswith("m-")
    code, again = _record(rig, "start")
    assert code == 1 and "already recording by hand" in str(again["message"])

    time.sleep(5.0)
    code, doc = _record(rig, "stop")
    assert code == 0 and doc["lesson"] == lesson_id, doc

    def catalogued() -> object:
        lesson = rig.get(f"/lessons/{lesson_id}")
        return lesson if lesson.get("recordings") else None

    lesson = rig.wait(f"manual recording {lesson_id} catalogued", catalogued, 60)
    assert lesson["kind"] == "manual" and lesson["lead"] == ROOM, lesson
    tracks = {r["track"]: r for r in lesson["recordings"]}
    assert {"teacher", "panel"} <= set(tracks), tracks
    # the controller took the recording's length from its manifest
    start, end = (datetime.fromisoformat(lesson[k]) for k in ("start_at", "end_at"))
    length = (end - start).total_seconds()
    assert 5.0 <= length < 20.0, lesson
    teacher = pathlib.Path(tracks["teacher"]["path"])
    manifest = Manifest.model_validate_json((teacher.parent / "manifest.json").read_text())
    segments = next(t for t in manifest.tracks if t.track == "teacher").segments
    recorded = (segments[0].start_s, segments[-1].end_s)
    window = (manifest.started_at - manifest.epoch, manifest.ended_at - manifest.epoch)
    # The camera starts when the recording does, so its first frame comes a little after
    # the start; a busy machine stretches that. Up to 2 s at either end is the camera, not
    # a loss; more means the recording missed part of what was asked for.
    late_start, early_end = recorded[0] - window[0], window[1] - recorded[1]
    timing = f"asked for {window}, recorded {recorded}"
    assert late_start < 2.0 and early_end < 2.0, timing
    # the file holds exactly what the agent recorded
    check = probe_recording(teacher, recorded[1] - recorded[0], tolerance_s=0.5)
    assert check["ok"], (check["problems"], timing)
