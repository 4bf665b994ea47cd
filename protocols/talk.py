"""The talk timeline of a lesson (S-T 分析的原始数据): one code for each second, per classroom.

An agent hears its own microphone (after echo cancellation) and watches its director's
detections, and at the lesson's end sends one code per second in its lesson report
(``protocols.messages.TalkTimeline``):

- ``.`` silence;
- ``T`` the teacher talks (the lead room's microphone is the teacher's);
- ``S`` students talk (a receiving room that speaks, or the lead room while one of its
  students stands);
- ``W`` the teacher writes on the board without talking (teacher behaviour all the same);
- ``?`` nothing heard: the microphone gave no sound that second.

No audio or video leaves the school for this: only these codes do. The controller merges
the rooms' timelines and codes the lesson every 30 s as T or S (``controller.analytics``).
"""

from __future__ import annotations

SILENCE, TEACHER, STUDENTS, WRITING, UNHEARD = ".", "T", "S", "W", "?"
CODES = SILENCE + TEACHER + STUDENTS + WRITING + UNHEARD
CODES_PATTERN = r"^[.TSW?]*$"
# A school day's longest session, with room to spare: 6 hours of seconds.
MAX_TALK_SECONDS = 6 * 3600
