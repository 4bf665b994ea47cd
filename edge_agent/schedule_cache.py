"""The agent's cached schedule: its lessons for the next two weeks, kept on disk.

With it a scheduled lesson is recorded even when the controller is unreachable at lesson
time; the recording is uploaded when the controller comes back.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib

from pydantic import ValidationError

from protocols.messages import JoinLesson, ScheduleUpdate

log = logging.getLogger(__name__)

CACHE_NAME = "schedule.json"


class ScheduleCache:
    """Lessons the controller last sent, persisted atomically."""

    def __init__(self, state_dir: pathlib.Path) -> None:
        self.path = state_dir / CACHE_NAME
        self.lessons: list[JoinLesson] = []

    def load(self) -> None:
        """Read the cache; a damaged file is logged and treated as empty."""
        if not self.path.exists():
            return
        try:
            update = ScheduleUpdate.model_validate_json(self.path.read_text(encoding="utf-8"))
        except (OSError, ValidationError, ValueError) as err:
            log.error(
                "cached schedule %s is unreadable (%s); waiting for the controller's next update",
                self.path,
                err,
            )
            return
        self.lessons = list(update.lessons)

    def store(self, update: ScheduleUpdate) -> None:
        """Replace the cache with the controller's latest schedule."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".part")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(update.model_dump_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self.lessons = list(update.lessons)

    def current(self, now: float) -> JoinLesson | None:
        """The lesson under way at ``now``, if any."""
        for lesson in self.lessons:
            if lesson.start_at <= now < lesson.end_at:
                return lesson
        return None

    def as_json(self) -> str:
        """The cache for ``status`` output."""
        return json.dumps([lesson.model_dump() for lesson in self.lessons])
