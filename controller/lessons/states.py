"""A lesson's states, and the transitions between them that the state machine allows.

scheduled → preparing → live → ending → recorded → uploaded is a lesson's ordinary life.
A scheduled lesson may also be cancelled, or found past its end when the controller comes
back: recorded if the agents' uploads are already in (they recorded from their cached
schedule), failed otherwise; a failed lesson becomes recorded when those uploads arrive.
Nothing else is allowed: ``transition`` refuses the rest with ``WrongState``.
"""

from __future__ import annotations

from enum import StrEnum


class LessonState(StrEnum):
    """A lesson's state; equal to its stored string."""

    SCHEDULED = "scheduled"
    PREPARING = "preparing"
    LIVE = "live"
    ENDING = "ending"
    RECORDED = "recorded"
    UPLOADED = "uploaded"
    FAILED = "failed"
    CANCELLED = "cancelled"


S = LessonState

ALLOWED: dict[LessonState, frozenset[LessonState]] = {
    S.SCHEDULED: frozenset({S.PREPARING, S.RECORDED, S.FAILED, S.CANCELLED}),
    S.PREPARING: frozenset({S.LIVE}),
    S.LIVE: frozenset({S.ENDING}),
    S.ENDING: frozenset({S.RECORDED}),
    S.RECORDED: frozenset({S.UPLOADED}),
    S.FAILED: frozenset({S.RECORDED}),
    S.UPLOADED: frozenset(),
    S.CANCELLED: frozenset(),
}

# Lessons that hold their rooms (and the planner's bandwidth) now or later.
ACTIVE_STATES: tuple[LessonState, ...] = (S.SCHEDULED, S.PREPARING, S.LIVE, S.ENDING)
LESSON_STATES: tuple[LessonState, ...] = tuple(LessonState)


def allowed(from_state: str, to_state: str) -> bool:
    """Whether the state machine allows this move (unknown states never are)."""
    try:
        return LessonState(to_state) in ALLOWED[LessonState(from_state)]
    except ValueError:
        return False
