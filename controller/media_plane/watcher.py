"""The health and load watcher: polls every Janus instance's admin API (a VideoRoom
``list``) and declares an instance down after a bounded run of failed polls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from controller.media_plane.config import WatchSettings
from controller.media_plane.exceptions import JanusError
from controller.media_plane.janus_api import JanusClient
from controller.media_plane.startup import room_load

log = logging.getLogger(__name__)

OnChange = Callable[["InstanceState"], Awaitable[None]]


@dataclass(frozen=True)
class InstanceState:
    """What the watcher knows of one instance; not healthy until a poll has succeeded."""

    name: str
    healthy: bool = False
    last_ok: datetime | None = None
    rooms: int = 0
    participants: int = 0
    failures: int = 0
    error: str = "not polled yet"
    room_ids: frozenset[int] = frozenset()


class HealthWatcher:
    """Polls each instance every ``poll_interval_s``; after ``down_after_failures`` failed
    polls in a row (each at most ``request_timeout_s``) the instance is down, so a dead or
    silent one is declared down within ``WatchSettings.down_within_s``."""

    def __init__(
        self,
        clients: Mapping[str, JanusClient],
        settings: WatchSettings,
        on_change: OnChange | None = None,
    ) -> None:
        self.clients = dict(clients)
        self.settings = settings
        self.on_change = on_change
        self._states = {name: InstanceState(name) for name in self.clients}
        self._task: asyncio.Task[None] | None = None

    def states(self) -> dict[str, InstanceState]:
        """Every instance's present state, by name."""
        return dict(self._states)

    def state(self, name: str) -> InstanceState:
        """One instance's present state."""
        return self._states[name]

    async def start(self) -> None:
        """Poll once (so placement has states to use), then keep polling in the background."""
        await self.poll_once()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def poll_once(self) -> None:
        """Poll every instance concurrently, so one silent instance delays no other."""
        await asyncio.gather(*(self._poll(name) for name in self.clients))

    async def note_failure(self, name: str, err: JanusError) -> None:
        """Count a failure seen by someone else (a room request), as a poll would."""
        await self._failed(name, str(err))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.poll_once()
            except Exception:  # a daemon loop survives a failed round (STYLE #9)
                log.exception("media plane: a health poll failed unexpectedly")

    async def _poll(self, name: str) -> None:
        try:
            listing = await self.clients[name].videoroom({"request": "list"})
        except JanusError as err:
            await self._failed(name, str(err))
            return
        rooms, participants = room_load(listing)
        ids = frozenset(int(r["room"]) for r in listing.get("list") or [] if "room" in r)
        old = self._states[name]
        now = InstanceState(name, True, datetime.now(UTC), rooms, participants, 0, "", ids)
        self._states[name] = now
        if not old.healthy:
            log.info("media plane: janus instance %r is up (%d room(s))", name, rooms)
            await self._changed(now)

    async def _failed(self, name: str, error: str) -> None:
        old = self._states[name]
        failures = old.failures + 1
        healthy = old.healthy and failures < self.settings.down_after_failures
        self._states[name] = new = replace(old, healthy=healthy, failures=failures, error=error)
        if old.healthy and not healthy:
            log.warning("media plane: janus instance %r is down: %s", name, error)
            await self._changed(new)

    async def _changed(self, state: InstanceState) -> None:
        if self.on_change is None:
            return
        try:
            await self.on_change(state)
        except Exception:  # the watcher keeps watching whatever the listener does
            log.exception("media plane: the listener of %r's change failed", state.name)
