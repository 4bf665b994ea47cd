"""Fan-out of one source's encoded frames to its consumers (sender, recorder, push)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from protocols.media.encoded_frame import EncodedFrame

FrameSink = Callable[[EncodedFrame], None]


class FrameBus:
    """Delivers each encoded frame, on the event loop, to every subscribed sink."""

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self._sinks: list[FrameSink] = []
        self.frames = 0
        self.bytes = 0
        self.last_counter: int | None = None

    def subscribe(self, sink: FrameSink) -> None:
        """Add a sink; it must not block."""
        self._sinks.append(sink)

    def unsubscribe(self, sink: FrameSink) -> None:
        """Remove a sink if present."""
        if sink in self._sinks:
            self._sinks.remove(sink)

    def publish(self, frame: EncodedFrame) -> None:
        """Hand a frame to every sink; one failing sink does not starve the others."""
        self.frames += 1
        self.bytes += len(frame.data)
        if "counter" in frame.meta:
            self.last_counter = frame.meta["counter"]
        for sink in list(self._sinks):
            try:
                sink(frame)
            except Exception:
                import logging

                logging.getLogger(__name__).exception("sink of %s failed", self.name)


class QueueSink:
    """A bounded asyncio queue fed from a bus, for consumers that await frames."""

    def __init__(self, maxsize: int = 120) -> None:
        self.queue: asyncio.Queue[EncodedFrame] = asyncio.Queue(maxsize)
        self.dropped = 0

    def __call__(self, frame: EncodedFrame) -> None:
        """Enqueue, dropping the oldest frame when the consumer falls behind."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(frame)
