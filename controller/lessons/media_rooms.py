"""The orchestrator's side of the media plane (issue 13): each lesson's Janus room.

A lesson is placed as it comes due to prepare, by a task of its own on the event loop:
the orchestrator's pass never waits for it, and only that lesson's move to ``preparing``
waits for its own placement (a slow or stopped instance holds up no other lesson). Its
placement (instance URL, room, PIN; never the room's secret) travels in every
``JoinLesson`` of the lesson, and is stored (``LessonMediaRoom``: instance and room only)
so that a restarted controller or a new leader adopts the room (``adopt``) and the
agents stay where they are; rooms this controller made that no lesson owns any more are
swept away at the same time. The room is destroyed once the lesson is recorded.

A lesson goes to Janus only when every classroom's agent reads a placement (protocol
minor 6, release 0.6): an older agent would ignore it and offer to the built-in relay,
splitting the lesson, so the whole lesson runs on the built-in relay, with an ALERT
naming the classroom and its agent's version. Where no instance fits, the lesson goes to
the built-in relay if ``[media_plane] fallback_to_builtin`` allows it; else it still runs
with no live media: every agent is joined and told to record, the relay refuses their
offers (``NO_LIVE_MEDIA``), and an ALERT says live media is unavailable and why. Losing
the lesson's recording would be worse than losing its live link, and the agents record
from their cached schedule anyway. Such a lesson asks for a room again every
``LOCAL_RETRY_S``; once it has one, its agents are sent joins carrying it. A lesson whose
instance dies is moved by ``MediaPlane``; ``moved`` records the new placement, and the
orchestrator re-joins the lesson's agents to it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Classroom, Lesson, LessonMediaRoom
from controller.db.session import as_utc, utcnow
from controller.lessons.scheduling import log_event
from controller.media_plane.exceptions import MediaPlaneError
from controller.media_plane.plane import MediaPlane
from controller.media_plane.rooms import RoomPlacement
from protocols.messages import JanusPlacement

log = logging.getLogger(__name__)
T = TypeVar("T")

PLACE_TIMEOUT_S = 20.0  # one decision, and a create tried on each instance in turn
LOCAL_RETRY_S = 15.0  # a lesson with no live media asks for a room again this often
JANUS_MINOR = 6  # JoinLesson.media arrived in protocol minor 6 (release 0.6)
# What the relay answers an offer of a lesson with no live media; the agent's failed join
# carries it, and the orchestrator counts such an agent as joined (it records).
NO_LIVE_MEDIA = "live media unavailable for this lesson"
_RELEASE = re.compile(r"^(\d+)\.(\d+)")
Outcome = RoomPlacement | BaseException


def agent_placement(p: RoomPlacement) -> JanusPlacement | None:
    """What an agent is told of a placement (None: the built-in relay)."""
    if p.backend != "janus" or p.api_url is None or p.room is None:
        return None
    return JanusPlacement(api_url=p.api_url, room=p.room, pin=p.pin, instance=p.instance or "")


def too_old(room: Classroom) -> str | None:
    """Why the classroom's agent cannot use a Janus placement, or None if it can (or its
    version is unknown: it has not registered since the controller learnt to ask)."""
    if room.protocol_minor is not None:
        if room.protocol_minor < JANUS_MINOR:
            return (
                f"{room.id}: agent {room.agent_version or 'of unknown release'} speaks protocol "
                f"minor {room.protocol_minor}, Janus needs minor {JANUS_MINOR} (release 0.6)"
            )
        return None
    found = _RELEASE.match(room.agent_version or "")
    if found and (int(found[1]), int(found[2])) < (0, JANUS_MINOR):
        return f"{room.id}: agent {room.agent_version} predates Janus (release 0.6)"
    return None


class LessonRooms:
    """Places lessons on the media plane and remembers what their agents are told."""

    def __init__(self, plane: MediaPlane) -> None:
        self.plane = plane
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_decided: Callable[[], None] = lambda: None
        # Read by the passes' worker thread, written on the loop or that thread: one dict
        # operation each.
        self._placed: dict[str, JanusPlacement] = {}
        self._tasks: dict[str, concurrent.futures.Future[Outcome]] = {}
        self._decided: set[str] = set()
        self._local: dict[str, str] = {}  # lessons with no live media, and why
        self._local_at: dict[str, float] = {}  # when each last asked for a room
        self.local_retry_s = LOCAL_RETRY_S

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the media plane runs on (the orchestrator's)."""
        self._loop = loop

    def placement(self, lesson_id: str) -> JanusPlacement | None:
        """The lesson's Janus placement for its joins (None: the built-in relay)."""
        return self._placed.get(lesson_id)

    def lessons(self) -> list[str]:
        """The lessons with a Janus room now."""
        return list(self._placed)

    def no_live_media(self, lesson_id: str) -> str | None:
        """Why the lesson runs with no live media (its agents only record), or None."""
        return self._local.get(lesson_id)

    def ready(self, db: Session, lesson: Lesson) -> bool:
        """Whether the lesson's placement is decided (a worker thread): the first call
        starts placing it, in a task of its own; ``on_decided`` is called once that is
        done, and the next call logs the outcome and answers True."""
        lesson_id = lesson.id
        if lesson_id in self._decided:
            return True
        task = self._tasks.get(lesson_id)
        if task is None:
            old = self._old_agents(db, lesson)
            if old:
                self._decide(db, lesson_id, "builtin-old", "; ".join(old))
                return True
            loop = self._loop
            if loop is None:
                self._decide(db, lesson_id, "local", "the media plane is not running")
                return True
            task = asyncio.run_coroutine_threadsafe(self._open(lesson_id), loop)
            self._tasks[lesson_id] = task
            task.add_done_callback(lambda _: self.on_decided())
            return False
        if not task.done():
            return False
        del self._tasks[lesson_id]
        try:
            outcome: Outcome = task.result()
        except BaseException as err:  # noqa: BLE001 - any failure leaves it recording locally
            outcome = err
        if isinstance(outcome, BaseException):
            why = str(outcome) or f"{type(outcome).__name__} while placing the lesson"
            self._decide(db, lesson_id, "local", why)
            return True
        placed = agent_placement(outcome)
        if placed is None:
            self._decide(db, lesson_id, "builtin", outcome.reason)
            return True
        self._placed[lesson_id] = placed
        self._store(db, lesson_id, placed)
        self._decided.add(lesson_id)
        down = sorted(n for n, s in self.plane.watcher.states().items() if not s.healthy)
        alert = "ALERT " if down or " failed (" in outcome.reason else ""
        log_event(
            db,
            lesson_id,
            f"{alert}media plane: room {placed.room} on Janus instance {placed.instance}: "
            f"{outcome.reason}",
        )
        return True

    def retry_local(self, db: Session, lesson: Lesson) -> bool:
        """A lesson with no live media asks for a room again every ``local_retry_s`` (a
        worker thread); True once it has one: its joined agents need joins carrying it."""
        lesson_id = lesson.id
        if lesson_id not in self._local:
            return False
        task = self._tasks.get(lesson_id)
        if task is None:
            if time.monotonic() - self._local_at.get(lesson_id, 0.0) < self.local_retry_s:
                return False
            loop = self._loop
            if loop is None:
                return False
            task = asyncio.run_coroutine_threadsafe(self._open(lesson_id), loop)
            self._tasks[lesson_id] = task
            task.add_done_callback(lambda _: self.on_decided())
            return False
        if not task.done():
            return False
        del self._tasks[lesson_id]
        self._local_at[lesson_id] = time.monotonic()
        try:
            outcome = task.result()
        except BaseException as err:  # noqa: BLE001 - still nothing fits: it records on
            log.info("lesson %s still has no live media: %s", lesson_id, err)
            return False
        if isinstance(outcome, BaseException):
            return False
        placed = agent_placement(outcome)
        if placed is None:
            return False
        self._local.pop(lesson_id, None)
        self._local_at.pop(lesson_id, None)
        self._placed[lesson_id] = placed
        self._store(db, lesson_id, placed)
        log_event(
            db,
            lesson_id,
            f"media plane: live media restored: room {placed.room} on Janus instance "
            f"{placed.instance}: {outcome.reason}",
        )
        return True

    def close(self, db: Session, lesson_id: str) -> None:
        """Destroy the lesson's room at its end (a worker thread; idempotent)."""
        placed = self._placed.pop(lesson_id, None)
        self._decided.discard(lesson_id)
        self._local.pop(lesson_id, None)
        self._local_at.pop(lesson_id, None)
        task = self._tasks.pop(lesson_id, None)
        if task is not None:
            task.cancel()
        db.execute(delete(LessonMediaRoom).where(LessonMediaRoom.lesson_id == lesson_id))
        db.commit()
        try:
            self._on_loop(self.plane.rooms.close(lesson_id))
        except (MediaPlaneError, TimeoutError) as err:
            # The room manager keeps it as an orphan, destroyed when the instance answers;
            # a room it lost track of is swept at the next start.
            log_event(db, lesson_id, f"media plane: room not destroyed yet: {err}")
            return
        if placed is not None:
            log_event(
                db, lesson_id, f"media plane: room {placed.room} on {placed.instance} destroyed"
            )

    def drop_others(self, db: Session, active: set[str]) -> None:
        """Let go of lessons no longer under way that were never closed (cancelled while
        being placed, say): their rows go, their rooms are destroyed in the background
        (a worker thread; the pass does not wait)."""
        gone = (set(self._tasks) | set(self._placed) | self._decided) - active
        for lesson_id in gone:
            self._placed.pop(lesson_id, None)
            self._decided.discard(lesson_id)
            self._local.pop(lesson_id, None)
            self._local_at.pop(lesson_id, None)
            task = self._tasks.pop(lesson_id, None)
            if task is not None:
                task.cancel()
            db.execute(delete(LessonMediaRoom).where(LessonMediaRoom.lesson_id == lesson_id))
            db.commit()
            if self._loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed: stopping
                    asyncio.run_coroutine_threadsafe(self._close_quietly(lesson_id), self._loop)

    async def _close_quietly(self, lesson_id: str) -> None:
        try:
            await self.plane.rooms.close(lesson_id)
        except MediaPlaneError as err:
            log.warning("media plane: room of lesson %s left: %s", lesson_id, err)

    def demote_if_old(self, db: Session, lesson: Lesson) -> bool:
        """An agent that cannot use Janus turned up in a lesson on Janus (it registered
        late, or was downgraded): the whole lesson moves to the built-in relay, its room
        destroyed (a worker thread). Whether it moved: its joined agents need new joins."""
        if lesson.id not in self._placed:
            return False
        old = self._old_agents(db, lesson)
        if not old:
            return False
        placed = self._placed.pop(lesson.id)
        db.execute(delete(LessonMediaRoom).where(LessonMediaRoom.lesson_id == lesson.id))
        db.commit()
        try:
            self._on_loop(self.plane.rooms.close(lesson.id))
        except (MediaPlaneError, TimeoutError) as err:
            log.warning("lesson %s: room %s not destroyed yet: %s", lesson.id, placed.room, err)
        self._decide(db, lesson.id, "builtin-old", "; ".join(old))
        return True

    def store(self, db: Session, lesson_id: str) -> None:
        """Keep the lesson's present placement (after a move) for a successor."""
        placed = self._placed.get(lesson_id)
        if placed is None:
            db.execute(delete(LessonMediaRoom).where(LessonMediaRoom.lesson_id == lesson_id))
            db.commit()
        else:
            self._store(db, lesson_id, placed)

    async def adopt(self, sessions: sessionmaker[Session]) -> list[str]:
        """Take over the stored rooms of lessons still under way whose room still exists
        on its instance, forget the others, and sweep away the rooms this controller made
        that no lesson owns (the controller starts, or leads): what was done, each."""

        def load() -> list[tuple[str, str, int, bool]]:
            now = utcnow()
            with sessions() as db:
                rows = db.execute(
                    select(LessonMediaRoom, Lesson.state, Lesson.end_at).join(
                        Lesson, Lesson.id == LessonMediaRoom.lesson_id
                    )
                ).all()
                return [
                    (
                        r.lesson_id,
                        r.instance,
                        r.room,
                        state in ("scheduled", "preparing", "live") and as_utc(end) > now,
                    )
                    for r, state, end in rows
                ]

        done: list[str] = []
        kept: dict[str, JanusPlacement] = {}
        forget: list[str] = []
        rows = await asyncio.to_thread(load)

        async def one(lesson_id: str, instance: str, room: int, under_way: bool) -> Any:
            if not under_way:
                return None
            return await self.plane.rooms.adopt(lesson_id, instance, room)

        # Concurrently: a stopped instance costs one request timeout, not one per room.
        outcomes = await asyncio.gather(*(one(*row) for row in rows))
        for (lesson_id, instance, room, _), adopted in zip(rows, outcomes, strict=True):
            placed = agent_placement(adopted) if adopted is not None else None
            if placed is not None:
                kept[lesson_id] = placed
                self._placed[lesson_id] = placed
                done.append(f"lesson {lesson_id} keeps room {room} on {instance}")
            else:
                forget.append(lesson_id)
                done.append(f"lesson {lesson_id}: room {room} on {instance} not kept")
        done += await self.plane.rooms.sweep()

        def write() -> None:
            with sessions() as db:
                if forget:
                    db.execute(delete(LessonMediaRoom).where(LessonMediaRoom.lesson_id.in_(forget)))
                    db.commit()
                for lesson_id, placed in kept.items():
                    log_event(
                        db,
                        lesson_id,
                        f"media plane: room {placed.room} on Janus instance {placed.instance} "
                        "kept from before the controller restarted",
                    )

        await asyncio.to_thread(write)
        return done

    def forget_all(self) -> None:
        """Forget every placement (the orchestrator stops); the rooms stay for whoever
        orchestrates next, which adopts them from the database."""
        for task in self._tasks.values():
            task.cancel()
        for lesson_id in list(self._placed) + list(self._tasks):
            self.plane.rooms.forget(lesson_id)
        self._placed.clear()
        self._tasks.clear()
        self._decided.clear()
        self._local.clear()
        self._local_at.clear()

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

    def _decide(self, db: Session, lesson_id: str, how: str, why: str) -> None:
        """A lesson not on Janus: on the built-in relay, or with no live media."""
        self._placed.pop(lesson_id, None)
        self._decided.add(lesson_id)
        if how == "builtin-old":
            detail = f"on the built-in relay: an agent cannot use Janus: {why}"
            self._local.pop(lesson_id, None)
        elif how == "builtin":
            detail = f"on the built-in relay: {why}"
        else:
            self._local[lesson_id] = why
            self._local_at[lesson_id] = time.monotonic()
            detail = f"live media unavailable, the classrooms record locally: {why}"
        log_event(db, lesson_id, f"ALERT media plane: {detail}")
        log.warning("lesson %s %s", lesson_id, detail)

    @staticmethod
    def _old_agents(db: Session, lesson: Lesson) -> list[str]:
        rooms = db.scalars(select(Classroom).where(Classroom.id.in_(lesson.classroom_ids))).all()
        return [why for room in sorted(rooms, key=lambda r: r.id) if (why := too_old(room))]

    @staticmethod
    def _store(db: Session, lesson_id: str, placed: JanusPlacement) -> None:
        row = db.get(LessonMediaRoom, lesson_id)
        if row is None:
            row = LessonMediaRoom(lesson_id=lesson_id, instance=placed.instance, room=placed.room)
            db.add(row)
        row.instance, row.room, row.placed_at = placed.instance, placed.room, _now()
        db.commit()

    async def _open(self, lesson_id: str) -> RoomPlacement:
        try:
            return await asyncio.wait_for(self.plane.rooms.open(lesson_id), PLACE_TIMEOUT_S)
        except TimeoutError as err:
            raise TimeoutError(
                f"no Janus instance answered within {PLACE_TIMEOUT_S:.0f} s"
            ) from err

    def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise MediaPlaneError("the media plane is not running (orchestrator not started)")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(PLACE_TIMEOUT_S)
        except concurrent.futures.TimeoutError as err:
            future.cancel()
            raise TimeoutError(
                f"no answer from the media plane in {PLACE_TIMEOUT_S:.0f} s"
            ) from err


def _now() -> datetime:
    return utcnow()
