"""The director (导播): detectors per camera, the rules, and the cuts they produce.

A caller with a teacher, a student and a board camera (and perhaps the panel) feeds each
one's small grayscale frames, about 5 a second, with :meth:`Director.feed`, and calls
:meth:`Director.tick` about as often; a tick that changes the shot returns a
:class:`~edge_agent.director.rules.Cut` (and hands it to ``on_cut``). Frames offered
faster than ``fps`` for a role are dropped; :meth:`Director.wants` says beforehand whether
a frame would be used, so the caller can skip scaling frames that would be dropped.

A camera whose last frame is older than ``stale_s`` counts as showing nothing (no teacher,
no writing, nobody standing), so a camera that fails never holds a shot on air.

Not thread-safe: call everything from one thread (or one asyncio task in an executor).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

from edge_agent.director.activity import (
    FULL_FRAME,
    BoardActivity,
    BoardDetector,
    BoardSettings,
    Gray,
    StudentActivity,
    StudentDetector,
    StudentSettings,
    TeacherActivity,
    TeacherDetector,
    TeacherSettings,
)
from edge_agent.director.rules import (
    DEFAULT_TARGETS,
    Cut,
    Observation,
    Rules,
    RuleSettings,
    Shot,
    Target,
)

ROLES: Final = ("teacher", "student", "board", "panel")
DEFAULT_ROLES: Final = ("teacher", "student", "board")
# The panel shows slides and annotations: watch all of it, and ink can be of any colour.
PANEL_SETTINGS: Final = BoardSettings(region=FULL_FRAME, ink="any")

Activity = TeacherActivity | StudentActivity | BoardActivity
Detector = TeacherDetector | StudentDetector | BoardDetector
A = TypeVar("A", TeacherActivity, StudentActivity, BoardActivity)


@dataclass
class DirectorStats:
    """Counters of a :class:`Director`."""

    frames: dict[str, int] = field(default_factory=dict)
    """Frames analysed, by role."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Frames offered sooner than ``1/fps`` after the previous one, by role."""
    ticks: int = 0
    cuts: int = 0
    cuts_by_shot: dict[str, int] = field(default_factory=dict)
    busy_s: float = 0.0
    """Wall-clock seconds spent in the detectors and the rules."""


class Director:
    """Watches the classroom's cameras and decides the programme shot."""

    def __init__(
        self,
        roles: Iterable[str] = DEFAULT_ROLES,
        *,
        fps: float = 5.0,
        stale_s: float = 2.0,
        teacher: TeacherSettings | None = None,
        student: StudentSettings | None = None,
        board: BoardSettings | None = None,
        panel: BoardSettings | None = None,
        rules: RuleSettings | None = None,
        targets: Mapping[Shot, Target] = DEFAULT_TARGETS,
        on_cut: Callable[[Cut], None] | None = None,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.roles = tuple(dict.fromkeys(roles))
        unknown = [r for r in self.roles if r not in ROLES]
        if unknown:
            raise ValueError(f"unknown roles {unknown}; use some of {', '.join(ROLES)}")
        self.fps, self.stale_s, self.on_cut = fps, stale_s, on_cut
        self._period = 1.0 / fps
        self._slack = self._period / 4  # a frame a little early (jitter) still counts
        teacher_s = dataclasses.replace(teacher or TeacherSettings(), fps=fps)
        student_s = dataclasses.replace(student or StudentSettings(), fps=fps)
        makers: dict[str, Callable[[], Detector]] = {
            "teacher": lambda: TeacherDetector(teacher_s),
            "student": lambda: StudentDetector(student_s),
            "board": lambda: BoardDetector(board),
            "panel": lambda: BoardDetector(panel or PANEL_SETTINGS),
        }
        self._detectors: dict[str, Detector] = {r: makers[r]() for r in self.roles}
        self._latest: dict[str, Activity] = {}
        self._next_due: dict[str, float] = {}
        self.rules = Rules(rules, targets)
        self.stats = DirectorStats(
            frames=dict.fromkeys(self.roles, 0), dropped=dict.fromkeys(self.roles, 0)
        )
        self.last_cut: Cut | None = None

    @property
    def shot(self) -> Shot | None:
        """The shot on air (None before the first tick)."""
        return self.rules.shot

    def wants(self, role: str, t: float) -> bool:
        """Whether a frame of ``role`` taken at ``t`` would be analysed (not dropped)."""
        self._check_role(role)
        due = self._next_due.get(role)
        return due is None or t >= due - self._slack

    def feed(self, role: str, gray_small: Gray, t: float) -> bool:
        """Analyse one small grayscale frame of ``role`` taken at ``t`` seconds.

        Returns False (and does nothing) if it comes sooner than ``1/fps`` after the last.
        """
        if not self.wants(role, t):
            self.stats.dropped[role] += 1
            return False
        # keep to the schedule, but start it afresh after a gap (a stalled camera)
        due = self._next_due.get(role, -math.inf)
        on_time = t - due < self._period
        self._next_due[role] = (due if on_time else t) + self._period
        started = time.perf_counter()
        self._latest[role] = self._detectors[role].feed(gray_small, t)
        self.stats.busy_s += time.perf_counter() - started
        self.stats.frames[role] += 1
        return True

    def latest(self, role: str) -> Activity | None:
        """The last result of ``role``'s detector (None if it has had no frame)."""
        self._check_role(role)
        return self._latest.get(role)

    def observation(self, t: float) -> Observation:
        """The detectors' latest results at ``t``, with stale cameras counting as empty."""
        teacher = self._fresh("teacher", TeacherActivity, t)
        student = self._fresh("student", StudentActivity, t)
        board = self._fresh("board", BoardActivity, t)
        panel = self._fresh("panel", BoardActivity, t)
        return Observation(
            teacher_present=teacher is not None and teacher.present,
            teacher_moving=teacher is not None and teacher.moving,
            teacher_at_board=teacher is not None and teacher.at_board,
            board_writing=board is not None and board.writing,
            panel_writing=panel is not None and panel.writing,
            student_standing=student is not None and student.standing,
        )

    def _fresh(self, role: str, kind: type[A], t: float) -> A | None:
        activity = self._latest.get(role)
        if isinstance(activity, kind) and t - activity.t <= self.stale_s:
            return activity
        return None

    def tick(self, t: float) -> Cut | None:
        """Apply the rules at ``t``; returns the cut to make now, if any (and calls
        ``on_cut`` with it)."""
        started = time.perf_counter()
        cut = self.rules.update(self.observation(t), t)
        self.stats.busy_s += time.perf_counter() - started
        self.stats.ticks += 1
        if cut is None:
            return None
        self.last_cut = cut
        self.stats.cuts += 1
        self.stats.cuts_by_shot[cut.shot] = self.stats.cuts_by_shot.get(cut.shot, 0) + 1
        if self.on_cut is not None:
            self.on_cut(cut)
        return cut

    def _check_role(self, role: str) -> None:
        if role not in self._detectors:
            raise ValueError(f"no camera with role {role!r}; this director has {self.roles}")
