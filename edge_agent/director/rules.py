"""The programme view's state machine: which shot the director puts on air, and when.

The rules of a classroom director (导播), in order of precedence:

1. A student stands up (confirmed for ``student_confirm_s``): the student shot, until they
   have sat down for ``student_release_s``.
2. Writing on the board (or the panel) for ``board_after_s``: the board shot (or the
   panel's). It ends when the writing has stopped for ``board_release_s``, or after
   ``board_max_s`` on the board: then a wide shot, and the board is not chosen again for
   ``board_cooldown_s``, so a long stretch of writing is relieved by a look at the room.
3. Otherwise the teacher: a wide shot while they walk (or cannot be seen), a medium shot
   once they have stood still for ``medium_after_s``.

Whatever the rules want, a shot stays on air for at least ``min_dwell_s``: a cut never
follows the previous one sooner, however the inputs flicker.

Each shot has a :class:`Target`: the source (by the profile's device role) whose picture
goes on air, and the PTZ preset (by :data:`edge_agent.devices.visca.PRESET_ROLES` name) to
recall on that camera. A change of shot comes out as a :class:`Cut`.

This module is pure logic: no OpenCV, no clock; time is whatever the caller passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

Shot = Literal["teacher_wide", "teacher_medium", "board", "panel", "student"]
SHOTS: Final[tuple[Shot, ...]] = ("teacher_wide", "teacher_medium", "board", "panel", "student")
BOARD_SHOTS: Final[frozenset[Shot]] = frozenset({"board", "panel"})
TEACHER_SHOTS: Final[frozenset[Shot]] = frozenset({"teacher_wide", "teacher_medium"})


@dataclass(frozen=True, slots=True)
class Target:
    """Where a shot comes from: a source by device role, and a PTZ preset name or None."""

    source_role: str
    preset: str | None


DEFAULT_TARGETS: Final[Mapping[Shot, Target]] = MappingProxyType(
    {
        "teacher_wide": Target("teacher", "wide"),
        "teacher_medium": Target("teacher", "teacher"),
        "board": Target("board", "board"),
        "panel": Target("panel", None),
        "student": Target("student", "students"),
    }
)


@dataclass(frozen=True, slots=True)
class Cut:
    """The programme view changes to ``shot`` at ``t``: show ``source_role``, recall
    ``preset`` (if any) on that camera. ``reason`` says which rule asked for it."""

    shot: Shot
    source_role: str
    preset: str | None
    t: float
    reason: str


@dataclass(frozen=True, slots=True)
class Observation:
    """What the cameras show at one tick (the detectors' latest results, or their defaults
    when a camera is missing or has gone quiet)."""

    teacher_present: bool = False
    teacher_moving: bool = False
    teacher_at_board: bool = False
    board_writing: bool = False
    panel_writing: bool = False
    student_standing: bool = False


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """Timings of the rules, in seconds."""

    min_dwell_s: float = 4.0
    """No cut follows the previous one sooner than this."""
    medium_after_s: float = 1.5
    """The teacher stands still this long before the medium shot."""
    board_after_s: float = 3.0
    """Writing goes on this long before the board shot."""
    board_release_s: float = 5.0
    """The board shot ends once the writing has stopped for this long."""
    board_max_s: float = 150.0
    """The longest board shot; then a wide shot."""
    board_cooldown_s: float = 30.0
    """After ``board_max_s`` the board is not chosen again for this long."""
    student_confirm_s: float = 1.0
    """A student stands this long before the student shot."""
    student_release_s: float = 1.0
    """The student shot ends once nobody has stood for this long."""
    require_at_board: bool = False
    """Count writing only while the teacher camera sees the teacher at the board (guards
    against a slide show on the board camera when the teacher camera's board region is
    set up well; leave off if it is not)."""


class _Timer:
    """How long a condition has held its present value."""

    def __init__(self) -> None:
        self.value = False
        self._since: float | None = None  # None: false since before the first update

    def update(self, value: bool, t: float) -> float:
        """Record ``value`` at ``t``; returns for how long it has had this value."""
        if value != self.value:
            self.value, self._since = value, t
        return math.inf if self._since is None else t - self._since


class Rules:
    """Chooses the programme shot tick by tick from :class:`Observation`s."""

    def __init__(
        self, settings: RuleSettings | None = None, targets: Mapping[Shot, Target] | None = None
    ) -> None:
        self.settings = settings or RuleSettings()
        self.targets: Mapping[Shot, Target] = targets if targets is not None else DEFAULT_TARGETS
        missing = [shot for shot in SHOTS if shot not in self.targets]
        if missing:
            raise ValueError(f"targets lack shots {', '.join(missing)}; give all of {SHOTS}")
        self._shot: Shot | None = None
        self._since = -math.inf
        self._last_t = -math.inf
        self._cooldown_until = -math.inf
        self._standing = _Timer()
        self._writing = _Timer()
        self._still = _Timer()

    @property
    def shot(self) -> Shot | None:
        """The shot on air (None before the first update)."""
        return self._shot

    def on_air_for(self, t: float) -> float:
        """Seconds the present shot has been on air at ``t``."""
        return t - self._since

    def update(self, obs: Observation, t: float) -> Cut | None:
        """Take the observation at ``t``; returns the cut to make now, if any."""
        t = max(t, self._last_t)  # time never runs backwards here
        self._last_t = t
        want, reason = self._want(obs, t)
        if want == self._shot:
            return None
        if self._shot is not None and t - self._since < self.settings.min_dwell_s:
            return None
        self._shot, self._since = want, t
        target = self.targets[want]
        return Cut(want, target.source_role, target.preset, t, reason)

    def _want(self, obs: Observation, t: float) -> tuple[Shot, str]:
        s, current = self.settings, self._shot
        standing, standing_held = (
            obs.student_standing,
            self._standing.update(obs.student_standing, t),
        )
        gate = obs.teacher_at_board or not s.require_at_board
        board, panel = obs.board_writing and gate, obs.panel_writing and gate
        writing, writing_held = board or panel, self._writing.update(board or panel, t)
        still = obs.teacher_present and not obs.teacher_moving
        still_held = self._still.update(still, t)

        if current == "student" and (standing or standing_held < s.student_release_s):
            return "student", "the student is still standing"
        if standing and standing_held >= s.student_confirm_s:
            return "student", "a student stood up"

        if current is not None and current in BOARD_SHOTS:
            if t - self._since >= s.board_max_s:
                self._cooldown_until = t + s.board_cooldown_s
                return "teacher_wide", f"{s.board_max_s:g} s on the board"
            if writing or writing_held < s.board_release_s:
                return current, "writing goes on"
        elif writing and writing_held >= s.board_after_s and t >= self._cooldown_until:
            shot: Shot = "panel" if panel and not board else "board"
            return shot, f"writing for {writing_held:.1f} s"

        if not obs.teacher_present:
            return "teacher_wide", "the teacher is not seen"
        if obs.teacher_moving:
            return "teacher_wide", "the teacher is walking"
        if still and still_held >= s.medium_after_s:
            return "teacher_medium", "the teacher stands still"
        if current is not None and current in TEACHER_SHOTS:
            return current, "the teacher is settling"
        return "teacher_wide", "back to the teacher"
