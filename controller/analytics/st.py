"""S-T analysis (S-T 分析) of one lesson from its classrooms' talk timelines.

The rooms' timelines (``protocols.talk``: a code per second) are merged on the lesson's
clock: the teacher's behaviour is the lead room's ``T`` (talking) or ``W`` (writing on
the board); students talk where a receiving room says ``S``, or the lead room does (one
of its own students stands). Each ``interval_s`` (30 s by default) is then coded ``T`` or
``S`` by what took up most of it. As the S-T method has it, everything that is not the
teacher's behaviour is the students' (answering, but also silence: practice, thinking),
so an interval is ``T`` when the teacher's seconds are at least the rest; a second with
both talking counts for both. Then:

- Rt = N_T / N, the teacher's share of the samples;
- Ch = (g − 1) / N, with g the runs of equal codes (how often the floor changed hands);
- the teaching type: 练习型 (practice) where Rt ≤ 0.3, 讲授型 (lecture) where Rt ≥ 0.7,
  对话型 (dialogue) where Ch ≥ 0.4, otherwise 混合型 (mixed). The thresholds are compared
  in whole numbers (10·N_T ≤ 3·N), so a boundary case is never lost to rounding.

An interval of which more than half is unheard (no room's timeline covers it, or the
lead's microphone gave nothing) is left out; so is a last interval shorter than half.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from protocols.talk import SILENCE, STUDENTS, TEACHER, UNHEARD, WRITING

DEFAULT_INTERVAL_S = 30
MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 600
# Two stretches of a room's talk closer than this are one turn (a breath, a pause).
TURN_GAP_S = 2

TeachingType = Literal["practice", "lecture", "dialogue", "mixed"]
TYPE_LABELS: dict[str, tuple[str, str]] = {
    "practice": ("练习型", "practice"),
    "lecture": ("讲授型", "lecture"),
    "dialogue": ("对话型", "dialogue"),
    "mixed": ("混合型", "mixed"),
}
# The merged lesson, per second: teacher only, students only, both, neither, unknown.
BOTH = "B"


@dataclass(frozen=True)
class RoomTimeline:
    """One classroom's timeline placed on the lesson: ``offset_s`` seconds after its
    start (negative: the room began before the bell)."""

    classroom_id: str
    lead: bool
    offset_s: int
    codes: str


@dataclass(frozen=True)
class RoomTalk:
    """How often and how long a receiving room spoke (the lesson was truly two-way)."""

    classroom_id: str
    turns: int
    talk_s: int


@dataclass(frozen=True)
class StAnalysis:
    """A lesson's S-T figures."""

    interval_s: int
    samples: str  # one "T" or "S" per coded interval
    rt: float | None
    ch: float | None
    teaching_type: TeachingType | None
    teacher_talk_s: int
    student_talk_s: int
    silence_s: int
    heard_s: int
    rooms: list[RoomTalk] = field(default_factory=list)

    @property
    def n(self) -> int:
        """N, the number of coded intervals."""
        return len(self.samples)

    def document(self) -> dict[str, Any]:
        """The figures as the API sends them."""
        label = TYPE_LABELS.get(self.teaching_type or "", (None, None))
        return {
            "interval_s": self.interval_s,
            "samples": self.samples,
            "n": self.n,
            "n_t": self.samples.count(TEACHER),
            "rt": None if self.rt is None else round(self.rt, 4),
            "ch": None if self.ch is None else round(self.ch, 4),
            "type": self.teaching_type,
            "type_zh": label[0],
            "type_en": label[1],
            "teacher_talk_s": self.teacher_talk_s,
            "student_talk_s": self.student_talk_s,
            "silence_s": self.silence_s,
            "heard_s": self.heard_s,
            "rooms": [
                {"classroom": r.classroom_id, "turns": r.turns, "talk_s": r.talk_s}
                for r in self.rooms
            ],
        }


def teaching_type(n_t: int, n: int, g: int) -> TeachingType | None:
    """The RT-CH class of ``n`` samples, ``n_t`` of them T, in ``g`` runs (None: no samples)."""
    if n <= 0:
        return None
    if not 0 <= n_t <= n or not 1 <= g <= n:
        raise ValueError(f"need 0 ≤ N_T ≤ N and 1 ≤ g ≤ N, got N_T={n_t}, N={n}, g={g}")
    if 10 * n_t <= 3 * n:
        return "practice"
    if 10 * n_t >= 7 * n:
        return "lecture"
    if 10 * (g - 1) >= 4 * n:
        return "dialogue"
    return "mixed"


def runs(samples: str) -> int:
    """g: the number of runs of equal codes."""
    return sum(1 for i, c in enumerate(samples) if i == 0 or c != samples[i - 1])


def merge(rooms: list[RoomTimeline], length_s: int) -> str:
    """The lesson's ``length_s`` seconds: ``T``, ``S``, ``B`` (both), ``.`` or ``?``."""
    teacher = [False] * length_s
    students = [False] * length_s
    heard = [False] * length_s
    for room in rooms:
        lo = max(0, room.offset_s)
        hi = min(length_s, room.offset_s + len(room.codes))
        for sec in range(lo, hi):
            code = room.codes[sec - room.offset_s]
            if code == UNHEARD:
                continue
            if room.lead:  # the lesson is heard where the teacher is heard
                heard[sec] = True
            if code in (TEACHER, WRITING) and room.lead:
                teacher[sec] = True
            elif code in (STUDENTS, TEACHER):  # a receiving room speaking: students
                students[sec] = True
    if not any(r.lead for r in rooms):  # no lead timeline: what the receivers heard
        for room in rooms:
            for sec in range(max(0, room.offset_s), min(length_s, room.offset_s + len(room.codes))):
                heard[sec] = heard[sec] or room.codes[sec - room.offset_s] != UNHEARD
    out = []
    for t, s, h in zip(teacher, students, heard, strict=True):
        out.append(
            BOTH if t and s else TEACHER if t else STUDENTS if s else SILENCE if h else UNHEARD
        )
    return "".join(out)


def code(seconds: str, interval_s: int) -> str:
    """The merged seconds coded every ``interval_s`` as ``T`` or ``S``."""
    if not MIN_INTERVAL_S <= interval_s <= MAX_INTERVAL_S:
        raise ValueError(
            f"interval_s must be {MIN_INTERVAL_S}..{MAX_INTERVAL_S} seconds, got {interval_s}"
        )
    out = []
    for start in range(0, len(seconds), interval_s):
        chunk = seconds[start : start + interval_s]
        if 2 * len(chunk) < interval_s:
            break  # a last interval shorter than half
        unheard = chunk.count(UNHEARD)
        if 2 * unheard > len(chunk):
            continue
        t = chunk.count(TEACHER) + chunk.count(BOTH)
        rest = len(chunk) - unheard - chunk.count(TEACHER)  # students, both, silence
        out.append(TEACHER if t >= rest else STUDENTS)
    return "".join(out)


def _turns(codes: str) -> tuple[int, int]:
    """A receiving room's turns (stretches of ``S`` with gaps ≤ TURN_GAP_S) and seconds."""
    turns, talk, gap = 0, 0, None
    for c in codes:
        if c in (STUDENTS, TEACHER):
            talk += 1
            if gap is None or gap > TURN_GAP_S:
                turns += 1
            gap = 0
        elif gap is not None:
            gap += 1
    return turns, talk


def analyse(
    rooms: list[RoomTimeline], length_s: int, interval_s: int = DEFAULT_INTERVAL_S
) -> StAnalysis:
    """The S-T figures of a lesson of ``length_s`` seconds from its rooms' timelines."""
    if length_s < 0:
        raise ValueError(f"length_s must be ≥ 0, got {length_s}")
    seconds = merge(rooms, length_s)
    samples = code(seconds, interval_s)
    n, n_t, g = len(samples), samples.count(TEACHER), runs(samples)
    talks: Mapping[str, tuple[int, int]] = {
        r.classroom_id: _turns(r.codes[max(0, -r.offset_s) : max(0, length_s - r.offset_s)])
        for r in rooms
        if not r.lead
    }
    return StAnalysis(
        interval_s=interval_s,
        samples=samples,
        rt=n_t / n if n else None,
        ch=(g - 1) / n if n else None,
        teaching_type=teaching_type(n_t, n, g) if n else None,
        teacher_talk_s=sum(
            1
            for r in rooms
            if r.lead
            for c in r.codes[max(0, -r.offset_s) : max(0, length_s - r.offset_s)]
            if c == TEACHER
        ),
        student_talk_s=seconds.count(STUDENTS) + seconds.count(BOTH),
        silence_s=seconds.count(SILENCE),
        heard_s=length_s - seconds.count(UNHEARD),
        rooms=[RoomTalk(cid, *talks[cid]) for cid in sorted(talks)],
    )
