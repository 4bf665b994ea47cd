"""The talk tracker's coding of each second (logic; the voice detector is a fake here, the
real one hears real sound in test_talk_on_pulse.py), and the desk that follows lessons."""

from __future__ import annotations

import tomllib

import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.analytics.talk import TalkDesk, TalkTracker, analysed_microphone
from edge_agent.analytics.vad import FRAME, VoiceDetector
from edge_agent.director.rules import Observation
from edge_agent.profile import HardwareProfile
from protocols.talk import MAX_TALK_SECONDS

CHUNK = 960  # 20 ms, as the microphone gives it


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeDetector(VoiceDetector):
    """Says "speech" for chunks whose first sample is non-zero."""

    def frames(self, pcm: npt.NDArray[np.int16]) -> list[bool]:
        return [bool(pcm[0])] * (pcm.size // (FRAME // 3))  # two 10 ms frames a chunk


def _second(
    tracker: TalkTracker, clock: Clock, second: int, speech_chunks: int, chunks: int = 50
) -> None:
    """Feed second ``second`` (from 1000.0): 50 chunks of 20 ms, the first few speech."""
    for i in range(chunks):
        clock.t = 1000.0 + second + 0.01 + 0.02 * i
        value = 1000 if i < speech_chunks else 0
        tracker.hear(np.full(CHUNK, value, dtype=np.int16))


def test_a_second_is_talk_from_thirty_percent_of_speech() -> None:
    clock = Clock()
    tracker = TalkTracker(True, clock, detector=FakeDetector())
    for second, speech in enumerate((50, 15, 14, 0)):
        _second(tracker, clock, second, speech)
    timeline = tracker.timeline()
    assert timeline is not None and timeline.start == 1000.0
    assert timeline.codes[:4] == "TT.."


def test_the_director_makes_writing_and_a_standing_student() -> None:
    clock = Clock()
    seen = [Observation()]
    tracker = TalkTracker(True, clock, observe=lambda: seen[0], detector=FakeDetector())
    _second(tracker, clock, 0, 50)  # the teacher talks
    seen[0] = Observation(board_writing=True)
    _second(tracker, clock, 1, 0)  # silent at the board: still the teacher's
    seen[0] = Observation(student_standing=True)
    _second(tracker, clock, 2, 50)  # a student of the lead room stands and answers
    seen[0] = Observation(panel_writing=True)
    _second(tracker, clock, 3, 50)  # talking while writing on the panel
    _second(tracker, clock, 4, 0)
    receiver = TalkTracker(False, clock, observe=lambda: seen[0], detector=FakeDetector())
    _second(receiver, clock, 10, 0)
    _second(receiver, clock, 11, 50)
    t1, t2 = tracker.timeline(), receiver.timeline()
    assert t1 is not None and t1.codes == "TWSTW"
    assert t2 is not None and t2.codes[:2] == ".S"  # a receiving room that speaks: students


def test_seconds_without_sound_are_unheard_and_the_length_is_capped() -> None:
    clock = Clock()
    tracker = TalkTracker(True, clock, detector=FakeDetector())
    _second(tracker, clock, 0, 50)
    _second(tracker, clock, 4, 50)  # the microphone gave nothing for three seconds
    timeline = tracker.timeline()
    assert timeline is not None and timeline.codes == "T???T"
    _second(tracker, clock, MAX_TALK_SECONDS + 100, 1)
    timeline = tracker.timeline()
    assert timeline is not None and len(timeline.codes) == MAX_TALK_SECONDS


def test_the_desk_follows_lessons_and_a_retune_keeps_the_timeline() -> None:
    clock = Clock()
    desk = TalkDesk(clock)
    heard: list[int] = []
    mic = desk.filter_for("ceiling", lambda pcm: heard.append(pcm.size) or pcm)  # type: ignore[func-returns-value]
    other = desk.filter_for("lectern", None)
    silence = np.zeros(CHUNK, dtype=np.int16)
    mic(silence)  # no lesson: nothing tracked, the filter still runs
    assert heard == [CHUNK] and desk.lesson_ended("l1") is None
    desk.lesson_started("l1", True, "ceiling")
    for _ in range(60):
        clock.t += 0.02
        mic(silence)
        other(np.full(CHUNK, 3000, dtype=np.int16))  # not the analysed microphone
    desk.lesson_started("l1", True, "ceiling")  # new terms mid-lesson: same tracker
    desk.lesson_started("l2", False, "ceiling")  # the next lesson before l1 is closed
    timeline = desk.lesson_ended("l1")
    assert timeline is not None and set(timeline.codes) == {"."}
    assert desk.lesson_ended("l1") is None


def test_a_failing_tracker_never_stops_the_microphone() -> None:
    desk = TalkDesk(lambda: 1.0)
    desk.lesson_started("l1", True, "ceiling")
    mic = desk.filter_for("ceiling", None)
    odd = np.zeros(CHUNK, dtype=np.int16).reshape(2, -1)  # a shape the detector refuses
    assert mic(odd) is odd
    assert desk.failures == 1


def test_the_analysed_microphone_is_the_first_the_lesson_publishes() -> None:
    profile = HardwareProfile.model_validate(tomllib.loads(PROFILE))
    assert analysed_microphone(profile, ["teacher", "lectern"]) == "lectern"
    assert analysed_microphone(profile, ["teacher"]) == "ceiling"


def test_the_voice_detector_refuses_a_bad_setting() -> None:
    with pytest.raises(ValueError, match="aggressiveness must be 0, 1, 2 or 3"):
        VoiceDetector(aggressiveness=4)


PROFILE = """
name = "two-mics"
[[devices]]
name = "teacher"
kind = "camera"
role = "teacher"
driver = "synthetic"
width = 640
height = 360
fps = 15
bitrate = 500000
[[devices]]
name = "ceiling"
kind = "microphone"
role = "room"
driver = "synthetic"
bitrate = 32000
[[devices]]
name = "lectern"
kind = "microphone"
role = "room"
driver = "synthetic"
bitrate = 32000
"""
