"""The media plane as one object with a lifecycle: the instances' clients, the health
watcher, and the lessons' rooms, with lessons re-placed when their instance goes down."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from controller.media_plane.config import MediaPlaneConfig
from controller.media_plane.exceptions import MediaPlaneError
from controller.media_plane.janus_api import JanusClient
from controller.media_plane.rooms import RoomManager, RoomPlacement
from controller.media_plane.watcher import HealthWatcher, InstanceState

log = logging.getLogger(__name__)

Replaced = dict[str, RoomPlacement | MediaPlaneError]
OnReplaced = Callable[[str, Replaced], Awaitable[None]]


class MediaPlane:
    """Janus instances watched and used for lessons' rooms (no I/O before ``start``)."""

    def __init__(self, config: MediaPlaneConfig, on_replaced: OnReplaced | None = None) -> None:
        self.config = config
        self.on_replaced = on_replaced
        timeout = config.watch.request_timeout_s
        self.clients = {inst.name: JanusClient(inst, timeout) for inst in config.instances}
        self.watcher = HealthWatcher(self.clients, config.watch, self._changed)
        self.rooms = RoomManager(config, self.clients, self.watcher)

    async def start(self) -> None:
        """Open the clients and start watching (the first poll is done on return)."""
        try:
            for client in self.clients.values():
                await client.start()
            await self.watcher.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop watching and close the clients (rooms are left to their lessons' ends)."""
        await self.watcher.stop()
        for client in self.clients.values():
            await client.stop()

    async def _changed(self, state: InstanceState) -> None:
        if state.healthy:
            await self.rooms.sweep_orphans()
            return
        replaced = await self.rooms.replace_all_on(state.name)
        if replaced:
            log.warning(
                "media plane: %d lesson(s) of %r re-placed: %s",
                len(replaced),
                state.name,
                ", ".join(
                    f"{lesson} -> {p.instance or p.backend}"
                    if isinstance(p, RoomPlacement)
                    else f"{lesson} failed"
                    for lesson, p in replaced.items()
                ),
            )
        if self.on_replaced is not None and replaced:
            await self.on_replaced(state.name, replaced)
