"""Who publishes what in a lesson's room: feeds by classroom, streams by track name.

Each agent joins with its classroom id as display name and describes each stream with its
track name, so a subscriber finds "the lead's teacher camera" without any other channel.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RemoteStream:
    """One stream of a remote feed: its mid in the publisher's offer and its track name."""

    mid: str
    kind: str
    track: str


@dataclass(frozen=True)
class Feed:
    """A publisher in the room: its feed id, classroom and streams."""

    feed_id: int
    classroom: str
    streams: tuple[RemoteStream, ...]

    def stream(self, track: str) -> RemoteStream | None:
        """The stream carrying ``track``, if the classroom publishes it."""
        return next((s for s in self.streams if s.track == track), None)


def parse_feed(doc: dict[str, Any]) -> Feed | None:
    """A feed from a VideoRoom ``publishers`` entry; None for one we cannot use."""
    try:
        streams = tuple(
            RemoteStream(str(s["mid"]), str(s["type"]), str(s.get("description", "")))
            for s in doc.get("streams", [])
            if s.get("type") in ("audio", "video") and not s.get("disabled", False)
        )
        return Feed(int(doc["id"]), str(doc.get("display", "")), streams)
    except (KeyError, TypeError, ValueError):
        return None


class FeedDirectory:
    """The room's other publishers, kept up to date from the VideoRoom's events."""

    def __init__(self) -> None:
        self.feeds: dict[int, Feed] = {}
        # Set (and replaced) at every change, so waiters wake without a task per event.
        self._changed = asyncio.Event()

    def update(self, data: dict[str, Any]) -> None:
        """Apply a VideoRoom ``joined`` or ``event`` body (publishers, unpublished, leaving)."""
        for doc in data.get("publishers") or []:
            feed = parse_feed(doc) if isinstance(doc, dict) else None
            if feed is not None:
                self.feeds[feed.feed_id] = feed
        for key in ("unpublished", "leaving"):
            gone = data.get(key)
            if isinstance(gone, int):
                self.feeds.pop(gone, None)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def change(self) -> asyncio.Event:
        """An event set at the next change of the directory (take it before looking)."""
        return self._changed

    def find(self, classroom: str, tracks: list[str]) -> Feed | None:
        """The classroom's feed once it carries every track in ``tracks``."""
        for feed in self.feeds.values():
            if feed.classroom == classroom and all(feed.stream(t) for t in tracks):
                return feed
        return None

    async def wait_for(self, classroom: str, tracks: list[str], timeout_s: float) -> Feed:
        """Wait until ``classroom`` publishes ``tracks``; ``TimeoutError`` if it does not."""
        async with asyncio.timeout(timeout_s):
            while True:
                changed = self._changed
                feed = self.find(classroom, tracks)
                if feed is not None:
                    return feed
                await changed.wait()
