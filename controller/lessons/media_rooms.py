"""The orchestrator's side of the media plane (issue 13): each lesson's Janus room.

A lesson is placed as it starts preparing, and its placement (instance URL, room, PIN;
never the room's secret) travels in every ``JoinLesson`` of the lesson; the room is
destroyed once the lesson is recorded. Where no instance fits, the lesson goes to the
built-in relay if ``[media_plane] fallback_to_builtin`` allows it, else it is refused;
either way, and whenever an instance is down at placement, the lesson's events carry an
ALERT naming why. A lesson whose instance dies is moved by ``MediaPlane``; ``moved``
records the new placement, and the orchestrator re-joins the lesson's agents to it.

The orchestrator's passes run on a worker thread, and the media plane on the event loop:
``place`` and ``close`` hand their request to the loop and wait for it, bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from controller.lessons.scheduling import log_event
from controller.media_plane.exceptions import MediaPlaneError
from controller.media_plane.plane import MediaPlane
from controller.media_plane.rooms import RoomPlacement
from protocols.messages import JanusPlacement

log = logging.getLogger(__name__)

T = TypeVar("T")
PLACE_TIMEOUT_S = 20.0  # one decision, and a create tried on each instance in turn


def agent_placement(p: RoomPlacement) -> JanusPlacement | None:
    """What an agent is told of a placement (None: the built-in relay)."""
    if p.backend != "janus" or p.api_url is None or p.room is None:
        return None
    return JanusPlacement(api_url=p.api_url, room=p.room, pin=p.pin, instance=p.instance or "")


class LessonRooms:
    """Places lessons on the media plane and remembers what their agents are told."""

    def __init__(self, plane: MediaPlane) -> None:
        self.plane = plane
        self._loop: asyncio.AbstractEventLoop | None = None
        # Read by the passes' worker thread, written on the loop: one dict operation each.
        self._placed: dict[str, JanusPlacement] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the media plane runs on (the orchestrator's)."""
        self._loop = loop

    def placement(self, lesson_id: str) -> JanusPlacement | None:
        """The lesson's Janus placement for its joins (None: the built-in relay)."""
        return self._placed.get(lesson_id)

    def lessons(self) -> list[str]:
        """The lessons with a Janus room now."""
        return list(self._placed)

    def place(self, db: Session, lesson_id: str) -> str | None:
        """Place the lesson (a worker thread; blocks until decided): the reason it is
        refused, or None once it has a room or, where allowed, the built-in relay."""
        try:
            p = self._on_loop(self.plane.rooms.open(lesson_id))
        except (MediaPlaneError, TimeoutError) as err:
            why = str(err) or f"no placement within {PLACE_TIMEOUT_S:.0f} s"
            log_event(db, lesson_id, f"ALERT media plane: lesson refused: {why}")
            log.error("lesson %s refused by the media plane: %s", lesson_id, why)
            return why
        placed = agent_placement(p)
        if placed is None:
            self._placed.pop(lesson_id, None)
            log_event(db, lesson_id, f"ALERT media plane: on the built-in relay: {p.reason}")
            log.warning("lesson %s on the built-in relay: %s", lesson_id, p.reason)
            return None
        self._placed[lesson_id] = placed
        down = sorted(n for n, s in self.plane.watcher.states().items() if not s.healthy)
        alert = "ALERT " if down or " failed (" in p.reason else ""
        log_event(
            db,
            lesson_id,
            f"{alert}media plane: room {p.room} on Janus instance {p.instance}: {p.reason}",
        )
        return None

    def close(self, db: Session, lesson_id: str) -> None:
        """Destroy the lesson's room at its end (a worker thread; idempotent)."""
        placed = self._placed.pop(lesson_id, None)
        try:
            self._on_loop(self.plane.rooms.close(lesson_id))
        except (MediaPlaneError, TimeoutError) as err:
            # The room manager keeps it as an orphan, destroyed when the instance answers.
            log_event(db, lesson_id, f"media plane: room not destroyed yet: {err}")
            return
        if placed is not None:
            log_event(
                db, lesson_id, f"media plane: room {placed.room} on {placed.instance} destroyed"
            )

    async def close_all(self) -> None:
        """Destroy every room this controller made (the orchestrator stops: a successor
        places its lessons anew)."""
        for lesson_id in list(self._placed):
            self._placed.pop(lesson_id, None)
            try:
                await self.plane.rooms.close(lesson_id)
            except MediaPlaneError as err:
                log.warning("media plane: room of lesson %s left: %s", lesson_id, err)

    def moved(self, lesson_id: str, instance: str, outcome: RoomPlacement | MediaPlaneError) -> str:
        """Note where a lesson of a dead instance went; the event to log for it."""
        if isinstance(outcome, MediaPlaneError):
            self._placed.pop(lesson_id, None)
            return (
                f"ALERT media plane: Janus instance {instance} is down and the lesson could "
                f"not be moved: {outcome}"
            )
        placed = agent_placement(outcome)
        if placed is None:
            self._placed.pop(lesson_id, None)
            return (
                f"ALERT media plane: Janus instance {instance} is down; the lesson moves to "
                f"the built-in relay: {outcome.reason}"
            )
        self._placed[lesson_id] = placed
        return (
            f"ALERT media plane: Janus instance {instance} is down; the lesson moves to room "
            f"{placed.room} on {placed.instance}"
        )

    def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise MediaPlaneError("the media plane is not running (orchestrator not started)")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(PLACE_TIMEOUT_S)
        except FutureTimeout as err:
            future.cancel()
            why = f"no answer from the media plane in {PLACE_TIMEOUT_S:.0f} s"
            raise TimeoutError(why) from err
