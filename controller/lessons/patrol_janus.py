"""Patrol of lessons on Janus: their feeds as Janus holds them, and console viewers that
the controller subscribes in the lesson's room (``controller.media_plane.viewers``).

Feeds come from the room itself, not the agents' heartbeats: what a viewer can watch is
what Janus forwards, so the list asks Janus (``listparticipants`` through the admin API
the controller already speaks, each new feed's streams found once by a probe) and shows a
classroom only once its feed is in the room. The per-feed figures (fps, bitrate, loss,
round trip) still come from the agents' heartbeats, as on the built-in relay.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

from controller.media_plane.exceptions import MediaPlaneError
from controller.media_plane.viewers import Stream, probe_streams
from controller.relay.room import FeedRef

LISTING_TTL_S = 1.5  # the console refreshes every 2 s; many consoles share one listing
# A browser's answer to a few feeds is a few kB; far more is not an answer.
ANSWER_BODY_LIMIT = 64 * 1024


class Rooms(Protocol):
    """The orchestrator's lesson rooms (``controller.lessons.media_rooms.LessonRooms``)."""

    plane: Any

    def placement(self, lesson_id: str) -> Any:
        """The lesson's Janus placement, or None (the built-in relay)."""


@dataclass
class Listing:
    """A lesson's streams in its room, as last asked."""

    at: float
    streams: list[Stream]
    error: str = ""


class JanusFeeds:
    """The streams of Janus lessons' rooms, cached briefly, each feed probed once."""

    def __init__(self) -> None:
        self._listings: dict[str, Listing] = {}
        # A feed's streams do not change while it lives: probed once per (lesson, feed).
        self._probed: dict[tuple[str, int], list[Stream]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def streams(self, rooms: Rooms, lesson_id: str) -> Listing | None:
        """The lesson's streams now (None: it is not on Janus)."""
        placement = rooms.placement(lesson_id)
        if placement is None:
            return None
        lock = self._locks.setdefault(lesson_id, asyncio.Lock())
        async with lock:
            cached = self._listings.get(lesson_id)
            if cached is not None and time.monotonic() - cached.at < LISTING_TTL_S:
                return cached
            try:
                streams = await self._ask(rooms, lesson_id, placement)
                listing = Listing(time.monotonic(), streams)
            except (MediaPlaneError, KeyError, TypeError, ValueError) as err:
                why = f"Janus instance {placement.instance}: {err}"
                listing = Listing(time.monotonic(), [], why)
            self._listings[lesson_id] = listing
            return listing

    def forget(self, keep: set[str]) -> None:
        """Drop the listings of lessons no longer live."""
        for lesson_id in set(self._listings) - keep:
            self._listings.pop(lesson_id, None)
            self._locks.pop(lesson_id, None)
        self._probed = {k: v for k, v in self._probed.items() if k[0] in keep}

    async def _ask(self, rooms: Rooms, lesson_id: str, placement: Any) -> list[Stream]:
        client = rooms.plane.clients[placement.instance]
        answer = await client.videoroom({"request": "listparticipants", "room": placement.room})
        feeds = [
            int(p["id"]) for p in answer.get("participants") or [] if p.get("publisher") is True
        ]
        unknown = [f for f in feeds if (lesson_id, f) not in self._probed]
        if unknown:
            # A feed that vanished between the two requests fails the whole probe: the
            # next listing (in under two seconds) tries again.
            found = await probe_streams(placement.api_url, placement.room, placement.pin, unknown)
            for feed in unknown:
                self._probed[(lesson_id, feed)] = [s for s in found if s.feed == feed]
        return [s for feed in feeds for s in self._probed.get((lesson_id, feed), [])]


def parse_answer(body: object) -> str:
    """The browser's SDP answer from an answer request; ValueError says what is wrong."""
    sdp = body.get("sdp") if isinstance(body, dict) else None
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise ValueError(
            'body must be {"sdp": <answer>}, the browser\'s SDP answer (a string starting '
            "'v=0') to the offer the watch request returned"
        )
    if "m=" not in sdp:
        raise ValueError("the answer has no media section (m=): answer the offer as given")
    return sdp


def match_streams(streams: list[Stream], feeds: list[FeedRef]) -> list[Stream]:
    """The room's stream for each feed asked, in order; ValueError names a missing one."""
    out = []
    for f in feeds:
        st = next(
            (
                s
                for s in streams
                if s.classroom == f.classroom and s.track == f.track and s.kind == f.kind
            ),
            None,
        )
        if st is None:
            raise ValueError(
                f"{f.classroom}/{f.track} ({f.kind}) is not in the lesson's Janus room now; "
                "GET /api/v1/live lists the feeds you can watch"
            )
        out.append(st)
    return out
