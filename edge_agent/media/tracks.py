"""aiortc tracks that hand pre-encoded frames from a bus to a sender (no re-encoding)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from edge_agent.media.bus import FrameBus, QueueSink


class EncodedTrack(MediaStreamTrack):
    """Yields ``av.Packet`` so aiortc's sender packetises instead of encoding."""

    def __init__(self, bus: FrameBus, request_keyframe: Callable[[], None]) -> None:
        super().__init__()
        self.kind = bus.kind
        self.name = bus.name
        self._bus = bus
        self._sink = QueueSink()
        self._request_keyframe = request_keyframe
        self._need_keyframe = bus.kind == "video"
        self.frames = 0
        self.bytes = 0
        self.first_counter: int | None = None
        self.last_counter: int | None = None
        self.count_from: int | None = None
        bus.subscribe(self._sink)
        request_keyframe()

    def request_keyframe(self) -> None:
        """The far side lost a picture (PLI/FIR): ask the encoder for a keyframe."""
        self._request_keyframe()

    def count_frames_from(self, counter: int | None) -> None:
        """Count frames sent from this source counter on (the lesson's start)."""
        self.count_from = counter
        self.frames = 0
        self.bytes = 0
        self.first_counter = None

    async def recv(self) -> av.Packet[Any]:
        """Next encoded packet; waits for a keyframe before the first one."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            frame = await self._sink.queue.get()
            if self._need_keyframe:
                if not frame.keyframe:
                    continue
                self._need_keyframe = False
            break
        counter = frame.meta.get("counter")
        if counter is not None and (self.count_from is None or counter >= self.count_from):
            if self.first_counter is None:
                self.first_counter = counter
            self.last_counter = counter
            self.frames += 1
            self.bytes += len(frame.data)
        packet = av.Packet(frame.data)
        packet.pts = frame.pts
        packet.time_base = frame.time_base
        return packet

    def stop(self) -> None:
        """Detach from the bus."""
        super().stop()
        self._bus.unsubscribe(self._sink)
        # wake a pending recv() so the sender loop can finish
        with contextlib.suppress(asyncio.QueueEmpty, asyncio.QueueFull):
            self._sink.queue.put_nowait(self._sink.queue.get_nowait())
