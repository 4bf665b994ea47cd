"""The start-up check: every Janus instance's API answers ``info`` with the VideoRoom
plugin loaded, and its admin API accepts the admin secret; a setting the product relies
on but can run without is a warning."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from controller.media_plane.config import JanusInstance, MediaPlaneConfig
from controller.media_plane.exceptions import JanusError, JanusRefused
from controller.media_plane.janus_api import VIDEOROOM, JanusClient


@dataclass(frozen=True)
class InstanceCheck:
    """What the check found at one instance: its version and load, or the problem."""

    name: str
    capacity: int
    ok: bool
    version: str = ""
    rooms: int = 0
    participants: int = 0
    problem: str = ""
    warnings: tuple[str, ...] = ()

    def line(self) -> str:
        """One line for the operator."""
        if not self.ok:
            return f"{self.name:<20} DOWN  {self.problem}"
        return (
            f"{self.name:<20} ok    Janus {self.version}, {self.rooms} room(s), "
            f"{self.participants} participant(s), capacity {self.capacity} lesson(s)"
        ) + "".join(f"; warning: {w}" for w in self.warnings)

    def document(self) -> dict[str, Any]:
        """The check as JSON (no secret in it)."""
        return {
            "name": self.name,
            "ok": self.ok,
            "version": self.version,
            "rooms": self.rooms,
            "participants": self.participants,
            "capacity": self.capacity,
            "problem": self.problem,
            "warnings": list(self.warnings),
        }


def setting_warnings(name: str, info: dict[str, Any]) -> tuple[str, ...]:
    """Settings in an ``info`` answer that leave a gap: each named, with its fix."""
    out = []
    if info.get("ice-keepalive-conncheck") is False:
        # Without consent checks Janus never notices a peer that vanished without hanging
        # up (a console closed by power loss, a laptop lid): it goes on sending that
        # viewer's video until the lesson ends, and its watch_end is written only then.
        out.append(
            f"janus instance '{name}' has ice_keepalive_conncheck off: a patrol viewer whose "
            "browser vanishes keeps receiving until the lesson ends — set "
            "nat: { ice_keepalive_conncheck = true } in its janus.jcfg"
        )
    return tuple(out)


def room_load(listing: dict[str, Any]) -> tuple[int, int]:
    """Rooms and participants in a VideoRoom ``list`` answer."""
    rooms = listing.get("list") or []
    return len(rooms), sum(int(r.get("num_participants", 0)) for r in rooms)


async def check_instance(client: JanusClient) -> InstanceCheck:
    """Reach the API (``info``) and the admin API (a VideoRoom ``list`` needing the secret)."""
    inst = client.instance
    try:
        info = await client.info()
        if VIDEOROOM not in (info.get("plugins") or {}):
            raise JanusRefused(
                inst.name,
                f"api_url {inst.api_url} is Janus but without the VideoRoom plugin — enable "
                f"{VIDEOROOM} there (plugins folder, disable list in janus.jcfg)",
            )
        rooms, participants = room_load(await client.videoroom({"request": "list"}))
    except JanusError as err:
        return InstanceCheck(inst.name, inst.capacity, ok=False, problem=str(err))
    return InstanceCheck(
        inst.name,
        inst.capacity,
        ok=True,
        version=str(info.get("version_string", "?")),
        rooms=rooms,
        participants=participants,
        warnings=setting_warnings(inst.name, info),
    )


async def check_all(config: MediaPlaneConfig) -> list[InstanceCheck]:
    """Check every configured instance at once, each within the configured timeout."""

    async def one(inst: JanusInstance) -> InstanceCheck:
        client = JanusClient(inst, config.watch.request_timeout_s)
        await client.start()
        try:
            return await check_instance(client)
        finally:
            await client.stop()

    return list(await asyncio.gather(*(one(inst) for inst in config.instances)))
