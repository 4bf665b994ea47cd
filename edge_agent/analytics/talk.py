"""Who talks in this classroom, second by second, during a lesson (S-T 分析的原始数据).

:class:`TalkTracker` hears the room's microphone after the echo canceller (what the
loudspeakers play of the other rooms is taken out first, so the remote teacher's voice is
not counted as this room's) and asks the director what its cameras see once a second.
Each second gets a code of ``protocols.talk``: in the lead room a voice is the teacher's
(``T``), unless one of the room's own students stands (``S``); silence while the board or
the panel is written on is the teacher writing (``W``). In a receiving room a voice is
the students' (``S``). Only these codes leave the classroom PC, in the lesson report.

:class:`TalkDesk` is the agent's one tracker: the microphone filter feeds it from the
capture thread, the lesson's start and end switch it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from edge_agent.analytics.vad import VoiceDetector
from edge_agent.director.programme import ProgrammeDesk
from edge_agent.director.rules import Observation
from edge_agent.profile import HardwareProfile
from protocols.messages import TalkTimeline
from protocols.talk import MAX_TALK_SECONDS, SILENCE, STUDENTS, TEACHER, UNHEARD, WRITING

log = logging.getLogger(__name__)

RATE = 48000
# A second is talk when at least this share of its 30 ms frames is speech: speech has
# pauses between words, and a cough or a door is a frame or two.
SPEECH_SHARE = 0.3

Pcm = npt.NDArray[np.int16]
Observe = Callable[[], Observation | None]


def no_director() -> Observation | None:
    """No director in this lesson: the microphone alone decides."""
    return None


class TalkTracker:
    """One lesson's timeline in one classroom (``lead``: the teacher's room)."""

    def __init__(
        self,
        lead: bool,
        now: Callable[[], float],
        observe: Observe = no_director,
        detector: VoiceDetector | None = None,
        speech_share: float = SPEECH_SHARE,
    ) -> None:
        if not 0.0 < speech_share <= 1.0:
            raise ValueError(f"speech_share must be in (0, 1], got {speech_share}")
        self.lead = lead
        self._now = now
        self._observe = observe
        self._vad = detector or VoiceDetector()
        self._share = speech_share
        self._lock = threading.Lock()
        self._start: float | None = None
        self._codes: list[str] = []
        self._second = -1  # the second being heard, from start
        self._speech = self._frames = 0
        self._seen: Observation | None = None  # the director, as the second began
        self.cpu_s = 0.0  # thread CPU spent hearing (the analytics' cost)

    def hear(self, pcm: Pcm) -> None:
        """Samples just captured (48 kHz mono int16, after the echo canceller)."""
        began = time.thread_time()
        now = self._now()
        with self._lock:
            if self._start is None:
                self._start = float(math.floor(now))
            second = int(now - self._start)
            if second > self._second:
                self._close_until(second)
            frames = self._vad.frames(pcm)
            self._speech += sum(frames)
            self._frames += len(frames)
        self.cpu_s += time.thread_time() - began

    def _close_until(self, second: int) -> None:
        """Code the second being heard, and any with no sound up to ``second``; then open
        ``second`` with what the director sees as it begins."""
        if self._second >= 0:
            self._codes.append(self._code())
        missing = second - self._second - 1 if self._second >= 0 else 0
        self._codes.extend(UNHEARD * max(0, missing))
        del self._codes[MAX_TALK_SECONDS:]
        self._second = second
        self._speech = self._frames = 0
        self._seen = self._observe()

    def _code(self) -> str:
        if self._frames == 0:
            return UNHEARD
        seen = self._seen
        if self._speech >= self._share * self._frames:
            if self.lead and not (seen is not None and seen.student_standing):
                return TEACHER
            return STUDENTS
        if self.lead and seen is not None and (seen.board_writing or seen.panel_writing):
            return WRITING
        return SILENCE

    def timeline(self) -> TalkTimeline | None:
        """The codes so far, the second under way included (None: nothing was heard)."""
        with self._lock:
            if self._start is None:
                return None
            codes = [*self._codes, self._code()] if self._second >= 0 else self._codes
            return TalkTimeline(start=self._start, codes="".join(codes)[:MAX_TALK_SECONDS])


class TalkDesk:
    """The agent's trackers by lesson; the analysed microphone feeds the newest (a lesson
    that begins before the previous one is closed takes the microphone over)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._trackers: dict[str, TalkTracker] = {}
        self._current: TalkTracker | None = None
        self.microphone: str | None = None  # the device whose sound is analysed
        self.failures = 0

    def filter_for(self, device: str, inner: Callable[[Pcm], Pcm] | None) -> Callable[[Pcm], Pcm]:
        """The microphone filter of ``device``: ``inner`` (the echo canceller), then the
        tracker hears the result if this is the analysed microphone."""

        def apply(pcm: Pcm) -> Pcm:
            out = inner(pcm) if inner is not None else pcm
            tracker = self._current
            if tracker is not None and device == self.microphone:
                try:
                    tracker.hear(out)
                except Exception:  # analytics never stops the microphone
                    self.failures += 1
                    if self.failures == 1 or self.failures % 1000 == 0:
                        log.exception("talk analytics failed (%d times)", self.failures)
            return out

        return apply

    def lesson_started(
        self, lesson_id: str, lead: bool, microphone: str | None, observe: Observe = no_director
    ) -> None:
        """Follow a lesson: ``microphone`` is the device to hear (None: none to hear). A
        lesson followed already (new terms mid-lesson) keeps its timeline."""
        with self._lock:
            tracker = self._trackers.get(lesson_id) or TalkTracker(lead, self._now, observe)
            self._trackers[lesson_id] = tracker
            self._current = tracker
            self.microphone = microphone

    def lesson_ended(self, lesson_id: str) -> TalkTimeline | None:
        """The lesson's timeline, and stop following it (None: not followed, or no sound)."""
        with self._lock:
            tracker = self._trackers.pop(lesson_id, None)
            if tracker is None:
                return None
            if self._current is tracker:
                self._current = None
        return tracker.timeline()


def analysed_microphone(profile: HardwareProfile, publish: list[str]) -> str | None:
    """The microphone to hear: the first the lesson publishes, else the profile's first."""
    mics = [d.name for d in profile.devices if d.kind == "microphone"]
    return next((m for m in mics if m in publish), mics[0] if mics else None)


def director_observer(desk: ProgrammeDesk, lesson_id: str) -> Observe:
    """What the lesson's director sees now (None while the lesson has no director)."""

    def observe() -> Observation | None:
        programme = desk.programmes.get(lesson_id)
        return None if programme is None else programme.director.observation(time.monotonic())

    return observe
