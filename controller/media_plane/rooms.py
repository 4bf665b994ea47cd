"""Lessons' VideoRooms: create one with a per-lesson secret and participant PIN on the
placed instance, destroy it at the lesson's end, re-place a lesson whose instance died,
adopt the rooms a previous run made, and sweep away those no lesson owns."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controller.media_plane.config import MediaPlaneConfig
from controller.media_plane.exceptions import JanusError, MediaPlaneError, VideoRoomError
from controller.media_plane.janus_api import JanusClient
from controller.media_plane.placement import Decision, choose
from controller.media_plane.room_keys import DESCRIPTION_PREFIX, room_pin, room_secret
from controller.media_plane.watcher import HealthWatcher

log = logging.getLogger(__name__)

ROOM_EXISTS = 427  # JANUS_VIDEOROOM_ERROR_ROOM_EXISTS
NO_SUCH_ROOM = 426  # JANUS_VIDEOROOM_ERROR_NO_SUCH_ROOM
UNAUTHORIZED = 433  # JANUS_VIDEOROOM_ERROR_UNAUTHORIZED: not our secret
# A lesson's lead plus receiving classrooms, each publishing camera, panel and sound, and
# room for patrol later; Janus's default is 3.
PUBLISHERS = 16
# JSON numbers above 2**53 lose precision in JavaScript clients (the console).
MAX_ROOM_ID = 2**53 - 1


@dataclass(frozen=True)
class RoomPlacement:
    """Where a lesson's media goes: the built-in relay, or a room on a Janus instance.

    ``secret`` lets the controller manage (destroy) the room; ``pin`` admits participants.
    Neither is ever logged, and neither appears in ``repr``.
    """

    lesson_id: str
    backend: str
    reason: str
    instance: str | None = None
    api_url: str | None = None
    room: int | None = None
    pin: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)


class RoomManager:
    """The lessons placed by this controller, and their rooms' lifecycle."""

    def __init__(
        self,
        config: MediaPlaneConfig,
        clients: Mapping[str, JanusClient],
        watcher: HealthWatcher,
    ) -> None:
        self.config = config
        self.clients = dict(clients)
        self.watcher = watcher
        self._placements: dict[str, RoomPlacement] = {}
        self._reserved: Counter[str] = Counter()
        self._orphans: list[RoomPlacement] = []
        self._pending: dict[str, asyncio.Future[RoomPlacement]] = {}
        # Rooms being created now: not yet a placement, and not to be swept.
        self._creating: set[tuple[str, int]] = set()
        # Rooms destroyed by us that the watcher may still list until its next poll.
        self._gone: dict[str, set[int]] = {name: set() for name in self.clients}
        # Held only while deciding, never across a request: one decision at a time, so
        # two lessons never both take an instance's last place.
        self._deciding = asyncio.Lock()

    def placement(self, lesson_id: str) -> RoomPlacement | None:
        """The lesson's present placement, if it has one."""
        return self._placements.get(lesson_id)

    def loads(self) -> dict[str, int]:
        """Rooms counted against each instance's capacity: our lessons' (those being
        created too) and any other room the watcher saw there, such as one a previous run
        of the controller left."""
        ours: dict[str, set[int]] = {name: set() for name in self.clients}
        for p in self._placements.values():
            if p.instance is not None and p.room is not None:
                ours[p.instance].add(p.room)
        out: dict[str, int] = {}
        for name in self.clients:
            seen = self.watcher.state(name).room_ids
            self._gone[name] &= seen  # destroyed and no longer listed: forget it
            foreign = seen - ours[name] - self._gone[name]
            out[name] = len(ours[name]) + self._reserved[name] + len(foreign)
        return out

    def lessons_on(self, instance: str) -> list[str]:
        """The lessons placed on ``instance``."""
        return [p.lesson_id for p in self._placements.values() if p.instance == instance]

    async def open(self, lesson_id: str) -> RoomPlacement:
        """The lesson's placement, creating its room if it has none (idempotent)."""
        existing = self._placements.get(lesson_id)
        if existing is not None:
            return existing
        pending = self._pending.get(lesson_id)
        if pending is None:
            # One creation per lesson, however many callers ask at once.
            pending = asyncio.ensure_future(self._place(lesson_id, {}))
            self._pending[lesson_id] = pending
            pending.add_done_callback(lambda _: self._pending.pop(lesson_id, None))
        return await asyncio.shield(pending)

    def forget(self, lesson_id: str) -> None:
        """Drop the lesson's placement from memory, keeping its room (another controller,
        or this one leading again, adopts it)."""
        self._placements.pop(lesson_id, None)

    async def exists(self, lesson_id: str) -> bool:
        """Whether the lesson's room exists on its instance now."""
        p = self._placements.get(lesson_id)
        if p is None or p.instance is None:
            return False
        answer = await self.clients[p.instance].videoroom({"request": "exists", "room": p.room})
        return bool(answer.get("exists"))

    async def close(self, lesson_id: str) -> None:
        """Destroy the lesson's room at its end; closing twice, or an unknown lesson, is fine.

        An instance that does not answer keeps the room as an orphan, destroyed by
        ``sweep_orphans`` once it answers again.
        """
        pending = self._pending.get(lesson_id)
        if pending is not None:
            # A room being created now would otherwise outlive the lesson.
            with contextlib.suppress(MediaPlaneError):
                await asyncio.shield(pending)
        p = self._placements.pop(lesson_id, None)
        if p is not None and p.instance is not None:
            await self._destroy_or_keep(p)

    async def replace(self, lesson_id: str) -> RoomPlacement:
        """Place the lesson anew away from its present instance (usually a dead one), with
        a new room, secret and PIN; the caller tells the lesson's agents."""
        old = self._placements.get(lesson_id)
        if old is None:
            raise MediaPlaneError(f"lesson {lesson_id!r} has no placement to replace")
        exclude = {old.instance: "the lesson's room was there"} if old.instance else {}
        new = await self._place(lesson_id, exclude)
        if old.instance is not None and self.watcher.state(old.instance).healthy:
            await self._destroy_or_keep(old)
        elif old.instance is not None:
            # A dead Janus took its rooms with it; one that was only silent may return
            # with the room, so it is destroyed when it answers (not waited for now: each
            # lesson still to move would wait a timeout).
            self._orphans.append(old)
        return new

    async def replace_all_on(self, instance: str) -> dict[str, RoomPlacement | MediaPlaneError]:
        """Re-place every lesson of ``instance``: each lesson's new placement or error."""
        out: dict[str, RoomPlacement | MediaPlaneError] = {}
        for lesson_id in self.lessons_on(instance):
            try:
                out[lesson_id] = await self.replace(lesson_id)
            except MediaPlaneError as err:
                log.error("media plane: lesson %s could not be re-placed: %s", lesson_id, err)
                out[lesson_id] = err
        return out

    async def sweep_orphans(self) -> None:
        """Destroy rooms left on instances that did not answer at the time."""
        orphans, self._orphans = self._orphans, []
        for p in orphans:
            if self.watcher.state(p.instance or "").healthy:
                await self._destroy_or_keep(p)
            else:
                self._orphans.append(p)

    async def adopt(self, lesson_id: str, instance: str, room: int) -> RoomPlacement | None:
        """Take over the room a previous run made for the lesson, if it still exists there;
        None: the lesson is placed anew (a room left on an instance that does not answer
        now is destroyed once it does)."""
        if instance not in self.clients:
            log.warning(
                "media plane: lesson %s was on %r, no longer configured", lesson_id, instance
            )
            return None
        inst = self.config.instance(instance)
        found = RoomPlacement(
            lesson_id,
            "janus",
            f"{instance}: its room kept from before the controller restarted",
            instance,
            inst.api_url,
            room,
            room_pin(inst, room),
            room_secret(inst, room),
        )
        if not self.watcher.state(instance).healthy:
            self._orphans.append(found)
            return None
        try:
            answer = await self.clients[instance].videoroom({"request": "exists", "room": room})
        except JanusError as err:
            log.warning(
                "media plane: lesson %s's room on %s not checked: %s", lesson_id, instance, err
            )
            self._orphans.append(found)
            return None
        if not answer.get("exists"):
            return None
        log.info("media plane: lesson %s keeps room %d on %s", lesson_id, room, instance)
        return self._keep(found)

    async def sweep(self, keep: Iterable[str] = ()) -> list[str]:
        """Destroy the rooms this controller made (named so) that no placement owns and no
        lesson of ``keep`` may still claim, on every healthy instance: what it did, each."""
        keep_ids = set(keep)
        names = [n for n in self.clients if self.watcher.state(n).healthy]
        # Concurrently: a stopped instance delays the others by nothing.
        found = await asyncio.gather(*(self._sweep_one(n, keep_ids) for n in names))
        done = [line for lines in found for line in lines]
        for line in done:
            log.info("media plane sweep: %s", line)
        return done

    async def _sweep_one(self, name: str, keep_ids: set[str]) -> list[str]:
        client = self.clients[name]
        done: list[str] = []
        try:
            listing = await client.videoroom({"request": "list"})
        except JanusError as err:
            return [f"{name} not swept: {err}"]
        # Read after the listing: a room created meanwhile is a placement or being made.
        ours = {(p.instance, p.room) for p in self._placements.values()} | self._creating
        inst = self.config.instance(name)
        for entry in listing.get("list") or []:
            room, description = entry.get("room"), str(entry.get("description", ""))
            if not isinstance(room, int) or not description.startswith(DESCRIPTION_PREFIX):
                continue
            lesson_id = description[len(DESCRIPTION_PREFIX) :]
            if (name, room) in ours or lesson_id in keep_ids:
                continue
            try:
                await client.videoroom(
                    {"request": "destroy", "room": room, "secret": room_secret(inst, room)}
                )
            except VideoRoomError as err:
                if err.code == UNAUTHORIZED:
                    done.append(
                        f"room {room} of lesson {lesson_id} on {name} left: made with "
                        "another admin secret (Janus drops it when restarted)"
                    )
                elif err.code != NO_SUCH_ROOM:
                    done.append(f"room {room} of lesson {lesson_id} on {name} left: {err}")
                continue
            except JanusError as err:
                done.append(f"room {room} of lesson {lesson_id} on {name} left: {err}")
                continue
            self._gone[name].add(room)
            done.append(f"room {room} of lesson {lesson_id} on {name} destroyed")
        return done

    async def _place(self, lesson_id: str, exclude: dict[str, str]) -> RoomPlacement:
        failed: list[str] = []
        while True:
            async with self._deciding:
                decision = choose(self.config, self.watcher.states(), self.loads(), exclude)
                if decision.instance is None:
                    return self._keep(RoomPlacement(lesson_id, "builtin", _why(decision, failed)))
                name = decision.instance
                self._reserved[name] += 1
            try:
                room, secret, pin = await self._create(name, lesson_id)
            except JanusError as err:
                # Unreachable at lesson start: try the next instance (the watcher counts it).
                if not isinstance(err, VideoRoomError):
                    await self.watcher.note_failure(name, err)
                exclude[name] = f"room not created: {err}"
                failed.append(f"{name} failed ({err})")
                continue
            finally:
                self._reserved[name] -= 1
            api_url = self.config.instance(name).api_url
            placement = RoomPlacement(
                lesson_id, "janus", _why(decision, failed), name, api_url, room, pin, secret
            )
            log.info("media plane: lesson %s in room %d on %s", lesson_id, room, name)
            return self._keep(placement)

    def _keep(self, placement: RoomPlacement) -> RoomPlacement:
        self._placements[placement.lesson_id] = placement
        return placement

    async def _create(self, name: str, lesson_id: str) -> tuple[int, str, str]:
        inst = self.config.instance(name)
        for _ in range(5):
            room = secrets.randbelow(MAX_ROOM_ID) + 1
            secret, pin = room_secret(inst, room), room_pin(inst, room)
            body = {
                "request": "create",
                "room": room,
                "secret": secret,
                "pin": pin,
                "description": f"{DESCRIPTION_PREFIX}{lesson_id}"[:128],
                "permanent": False,
                # Listed, so that the watcher counts it (private rooms are hidden from
                # "list"); the PIN keeps others out.
                "is_private": False,
                "publishers": PUBLISHERS,
                "videocodec": "h264",
                "audiocodec": "opus",
                "h264_profile": "42e01f",
                "record": False,
            }
            self._creating.add((name, room))
            try:
                await self.clients[name].videoroom(body)
            except VideoRoomError as err:
                if err.code == ROOM_EXISTS:
                    continue
                raise
            finally:
                self._creating.discard((name, room))
            return room, secret, pin
        raise MediaPlaneError(f"janus instance {name!r}: five random room ids were all taken")

    async def _destroy_or_keep(self, p: RoomPlacement) -> None:
        assert p.instance is not None and p.room is not None
        try:
            await self.clients[p.instance].videoroom(
                {"request": "destroy", "room": p.room, "secret": p.secret}
            )
        except VideoRoomError as err:
            if err.code != NO_SUCH_ROOM:
                raise
        except JanusError as err:
            log.warning("media plane: the room of lesson %s kept for later: %s", p.lesson_id, err)
            self._orphans.append(p)
        else:
            self._gone[p.instance].add(p.room)


def _why(decision: Decision, failed: list[str]) -> str:
    return "; ".join([*failed, decision.reason])
