"""Lesson analytics with real agents: a lead and a receiving classroom on PulseAudio
microphones (both acoustic loops closed, echo cancellers on), the lead's teacher talking
and the receiving class answering in turns. At the lesson's end each agent's report
carries its talk timeline, and the controller's analytics show the lead's talk as the
teacher's and the receiving room's turns as the students'."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace

import pytest
from benchlib import room_audio as ra
from benchlib import room_rig as rr
from benchlib.rig import LessonRig
from benchlib.talk_rig import SteadyRoomSimulator
from helpers import needs

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.solo,
    pytest.mark.timeout(300),
    needs(shutil.which("pulseaudio") is not None, "pulseaudio not installed"),
    needs(shutil.which("Xvfb") is not None, "Xvfb not installed"),
    needs(shutil.which("espeak-ng") is not None, "espeak-ng not installed"),
]

LEAD, RECEIVER = "city-101", "village-201"
SECONDS = 40.0


@pytest.fixture
def lesson(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LessonRig, str]]:
    # The rooms' air keeps its delay when the machine starves the simulator (talk_rig's
    # simulator; room_rig's own lets the echo path grow by every stall).
    monkeypatch.setattr(rr, "RoomSimulator", SteadyRoomSimulator)
    rig = LessonRig(heartbeat_s=1.0, prepare_s=4.0, segment_seconds=4.0)
    rooms = rr.RoomRig(rig, small_video=True, small_fps=5, listen_to=(), hear_mics=False)
    teacher = ra.speaking(ra.LEAD_VOICE, "lead")
    # The class answers in every other 8 s (its bursts are off: speech only).
    answers = ra.speaking(replace(ra.RECEIVER_VOICES[0], turn_s=8, burst_dbfs=-120.0), "receiver")
    try:
        rooms.open(
            [
                rr.RoomPlan(LEAD, "城关小学", lead=True, voice=teacher, camera_width=320),
                rr.RoomPlan(RECEIVER, "乡村小学", voice=answers, camera_width=320),
            ]
        )
        doc = rig.schedule(LEAD, [RECEIVER], 6.0, SECONDS)
        rig.wait_lesson(doc["id"], ("recorded", "uploaded", "failed"), SECONDS + 90)
        yield rig, doc["id"]
    finally:
        rig.stop()
        rooms.stop()


def test_each_agent_reports_who_talked_and_the_controller_codes_it(
    lesson: tuple[LessonRig, str],
) -> None:
    rig, lesson_id = lesson
    doc = rig.get(f"/lessons/{lesson_id}/analytics?interval_s=4")
    assert sorted(doc["reported"]) == [LEAD, RECEIVER], doc
    seconds = doc["seconds"]
    # The lead's teacher talks throughout (the receiving class over it in its turns).
    assert seconds.count("T") + seconds.count("B") >= SECONDS * 0.6, seconds
    # The class answered in about half the seconds, in several turns.
    [room] = doc["rooms"]
    assert room["classroom"] == RECEIVER
    assert SECONDS * 0.25 <= room["talk_s"] <= SECONDS * 0.75, (room, seconds)
    assert room["turns"] >= 2, (room, seconds)
    assert doc["n"] >= 8 and doc["type"] is not None, doc
