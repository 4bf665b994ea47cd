"""A receiving room's speakers vanish mid-lesson: the console is told, the agent keeps
trying, the sound comes back when they do, and the recording never notices.

Two real agents with their speakers as PulseAudio null sinks and their screens on Xvfb.
The receiving room's sink is unloaded during the lesson (the amplifier unplugged), then
loaded again.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
from benchlib import room_audio as ra
from benchlib import room_rig as rr
from benchlib.rig import LessonRig
from benchlib.room_sim import MonitorRecorder
from helpers import needs

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(240),
    needs(shutil.which("pulseaudio") is not None, "pulseaudio not installed"),
    needs(shutil.which("Xvfb") is not None, "Xvfb not installed"),
]

LEAD, RECEIVER = "city-101", "village-201"
SECONDS = 40.0


@pytest.fixture
def live_lesson() -> Iterator[tuple[LessonRig, rr.RoomRig, str]]:
    rig = LessonRig(heartbeat_s=1.0, prepare_s=4.0, segment_seconds=4.0)
    rooms = rr.RoomRig(
        rig,
        synthetic_mic=True,
        closed_loop=False,
        small_video=True,
        echo_cancel=False,
        listen_to=(),  # the test records the receiving room's speakers itself
    )
    try:
        rooms.open([rr.RoomPlan(LEAD, "城关小学", lead=True), rr.RoomPlan(RECEIVER)])
        lesson = rig.schedule(LEAD, [RECEIVER], 6.0, SECONDS)
        rig.wait_lesson(lesson["id"], ("live",), 40)
        yield rig, rooms, lesson["id"]
    finally:
        rig.stop()
        rooms.stop()


def speaker_alert(rig: LessonRig) -> dict[str, Any] | None:
    for alert in rig.get("/dashboard")["alerts"]:
        if alert["classroom"] == RECEIVER and alert["key"] == "speakers":
            return dict(alert)
    return None


def clicks_heard(rooms: rr.RoomRig, seconds: float) -> int:
    """The lead's clicks heard at the receiving room's speakers in the last ``seconds``."""
    recorder = MonitorRecorder(rooms.pulse.server, f"{RECEIVER}_spk.monitor")
    recorder.start()
    time.sleep(seconds)
    recorder.stop()
    end = time.time()
    return len(rr.mouth_to_ear(recorder, ra.SYNTHETIC_CLICKS, end - seconds + 0.5, end))


def test_lost_speakers_are_reported_retried_and_do_not_touch_the_recording(
    live_lesson: tuple[LessonRig, rr.RoomRig, str],
) -> None:
    rig, rooms, lesson_id = live_lesson
    time.sleep(3.0)
    assert clicks_heard(rooms, 4.0) >= 1, "the lead's sound never reached the speakers"
    rooms.pulse.remove_sink(f"{RECEIVER}_spk")
    alert = rig.wait("the speakers alert on the dashboard", lambda: speaker_alert(rig), 15)
    assert "speakers" in alert["message"] and "retrying" in alert["message"], alert
    rooms.pulse.add_sink(f"{RECEIVER}_spk")
    rig.wait("the speakers alert to clear", lambda: speaker_alert(rig) is None, 25)
    time.sleep(2.0)  # a null sink that was idle stalls its first writes by about a second
    assert clicks_heard(rooms, 5.0) >= 1, "the sound did not come back with the speakers"
    rig.wait_lesson(lesson_id, ("recorded", "uploaded"), SECONDS + 60)
    catalogue = rig.catalogue(lesson_id)
    room = next(r for r in catalogue["classrooms"] if r["classroom"] == RECEIVER)
    own = [t for t in room["coverage"]["tracks"] if t["direction"] == "send"]
    assert own, "the receiving room recorded nothing of its own"
    scheduled = room["coverage"]["scheduled_s"]
    for track in own:  # the speakers are not in the recording's path: no gap at all
        assert track["covered_s"] >= 0.99 * scheduled, track
        assert not track["gaps"], track
