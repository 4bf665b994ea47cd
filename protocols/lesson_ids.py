"""Lesson ids the agent makes itself: recordings a technician starts by hand.

A manual recording's id is ``m-<start, Unix seconds>-<8 hex digits>``, so the controller
can catalogue it (with its start time) the first time an upload names it.
"""

from __future__ import annotations

import re
import secrets

MANUAL_ID = re.compile(r"^m-(\d{10})-[0-9a-f]{8}$")


def manual_lesson_id(start: float) -> str:
    """A fresh id for a manual recording that starts at ``start`` (Unix seconds)."""
    return f"m-{int(start):010d}-{secrets.token_hex(4)}"


def manual_start(lesson_id: str) -> float | None:
    """The start time encoded in a manual recording's id; None for a scheduled lesson."""
    match = MANUAL_ID.match(lesson_id)
    return None if match is None else float(match.group(1))
