"""A feed: one published track's encoded frames, fanned out to its subscribers.

The relay never decodes. Frames arrive from the publisher's tapped receiver as bytes and
leave through each subscriber's ``RelayTrack`` as ``av.Packet`` for pass-through sending.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from protocols.media.h264 import is_keyframe

log = logging.getLogger(__name__)

VIDEO_CLOCK = fractions.Fraction(1, 90000)
AUDIO_CLOCK = fractions.Fraction(1, 48000)
QUEUE_LIMIT = 90  # ~3 s of video; a subscriber further behind than this is resynchronised
KEYFRAME_REQUEST_INTERVAL_S = 0.3


class RelayTrack(MediaStreamTrack):
    """The subscriber side of a feed: yields pre-encoded packets to an aiortc sender."""

    def __init__(self, feed: Feed) -> None:
        super().__init__()
        self.kind = feed.kind
        self._feed = feed
        self._queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()
        self._waiting_keyframe = feed.kind == "video"
        self.frames = 0
        self.bytes = 0
        self.dropped = 0

    def offer(self, data: bytes, pts: int) -> None:
        """Queue one frame from the feed; drops until a keyframe after a gap."""
        if self._waiting_keyframe:
            if not is_keyframe(data):
                self.dropped += 1
                return
            self._waiting_keyframe = False
        if self._queue.qsize() >= QUEUE_LIMIT:
            # A stalled subscriber must not grow memory or latency without bound.
            while not self._queue.empty():
                self._queue.get_nowait()
                self.dropped += 1
            self._waiting_keyframe = self.kind == "video"
            self._feed.request_keyframe()
            return
        self._queue.put_nowait((data, pts))

    def request_keyframe(self) -> None:
        """Forward the subscriber's PLI/FIR to the publisher."""
        self._feed.request_keyframe()

    def end(self) -> None:
        """The feed has gone away for good."""
        self._queue.put_nowait(None)

    async def recv(self) -> av.Packet[Any]:
        """Next encoded packet for the sender."""
        item = await self._queue.get()
        if item is None or self.readyState != "live":
            raise MediaStreamError
        data, pts = item
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = VIDEO_CLOCK if self.kind == "video" else AUDIO_CLOCK
        self.frames += 1
        self.bytes += len(data)
        return packet

    def stop(self) -> None:
        """Detach from the feed."""
        super().stop()
        self._feed.unsubscribe(self)


class Feed:
    """One published track (for example ``teacher`` of classroom ``A``) in one lesson."""

    def __init__(self, source_classroom: str, track: str, kind: str) -> None:
        self.source_classroom = source_classroom
        self.track = track
        self.kind = kind
        self._subscribers: list[RelayTrack] = []
        self._keyframe_requester: Callable[[], bool] | None = None
        self._last_keyframe_request = 0.0
        self._pending_keyframe_request = False
        self.frames_in = 0
        self.bytes_in = 0
        self.keyframe_requests = 0
        # The subscriber sees a continuous clock even when the publisher reconnects.
        self._pts_offset = 0
        self._last_pts = -1
        self._origin_pts: int | None = None

    def attach_publisher(self, keyframe_requester: Callable[[], bool]) -> None:
        """A publisher's receiver now feeds this track."""
        self._keyframe_requester = keyframe_requester
        self._pts_offset = self._last_pts + 1 if self._last_pts >= 0 else 0
        self._origin_pts = None
        if self._subscribers:
            self._pending_keyframe_request = True

    def detach_publisher(self) -> None:
        """The publisher left; subscribers keep their tracks and wait for its return."""
        self._keyframe_requester = None

    def subscribe(self) -> RelayTrack:
        """A new subscriber track; asks the publisher for a keyframe so it starts fast."""
        track = RelayTrack(self)
        self._subscribers.append(track)
        self.request_keyframe()
        return track

    def unsubscribe(self, track: RelayTrack) -> None:
        """Forget a subscriber."""
        if track in self._subscribers:
            self._subscribers.remove(track)

    @property
    def subscribers(self) -> int:
        """How many subscribers receive this feed."""
        return len(self._subscribers)

    @property
    def dropped(self) -> int:
        """Frames the relay dropped on the way to its subscribers (behind, or waiting for
        a keyframe after a gap), over the subscribers it has now."""
        return sum(t.dropped for t in list(self._subscribers))

    def publish(self, data: bytes, pts: int) -> None:
        """Fan one encoded frame out to every subscriber."""
        if self._pending_keyframe_request:
            self._pending_keyframe_request = not self._send_keyframe_request()
        origin = self._origin_pts
        if origin is None:
            self._origin_pts = origin = pts
        out_pts = self._pts_offset + (pts - origin)
        self._last_pts = out_pts
        self.frames_in += 1
        self.bytes_in += len(data)
        for sub in self._subscribers:
            sub.offer(data, out_pts)

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most every few hundred ms."""
        now = time.monotonic()
        if now - self._last_keyframe_request < KEYFRAME_REQUEST_INTERVAL_S:
            self._pending_keyframe_request = True
            return
        self._pending_keyframe_request = not self._send_keyframe_request()

    def _send_keyframe_request(self) -> bool:
        if self.kind != "video" or self._keyframe_requester is None:
            return self.kind != "video"
        now = time.monotonic()
        if now - self._last_keyframe_request < KEYFRAME_REQUEST_INTERVAL_S:
            return False
        self._last_keyframe_request = now
        sent = self._keyframe_requester()
        if sent:
            self.keyframe_requests += 1
            log.debug("keyframe requested from %s/%s", self.source_classroom, self.track)
        return sent

    def close(self) -> None:
        """End every subscriber track."""
        for sub in list(self._subscribers):
            sub.end()
        self._subscribers.clear()
