"""Decoded, low-rate copies of a local source, for the panel's corner and the director.

Sources publish encoded H.264 on their bus. A ``BusDecoder`` takes those frames on the
event loop (a non-blocking put), decodes them on its own thread and hands on at most
``max_fps`` pictures a second. When it falls behind it drops to the next keyframe, so a
slow consumer never delays the sender or the recorder.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import av

from edge_agent.media.bus import FrameBus
from protocols.media.encoded_frame import EncodedFrame

log = logging.getLogger(__name__)
FrameCallback = Callable[[av.VideoFrame], None]


class BusDecoder:
    """Decodes one video bus on a thread and calls ``on_frame`` at most ``max_fps`` a second."""

    def __init__(
        self, bus: FrameBus, on_frame: FrameCallback, max_fps: float = 10.0, backlog: int = 30
    ) -> None:
        if bus.kind != "video":
            raise ValueError(f"source {bus.name!r} is {bus.kind}, not video; pick a camera")
        self.bus = bus
        self._on_frame = on_frame
        self._interval = 1.0 / max_fps
        self._queue: queue.Queue[EncodedFrame | None] = queue.Queue(backlog)
        self._thread: threading.Thread | None = None
        self._want_key = True
        self.decoded = 0
        self.delivered = 0
        self.dropped = 0
        self.errors = 0

    def start(self) -> None:
        """Subscribe to the bus and start decoding."""
        self._thread = threading.Thread(target=self._run, name=f"preview-{self.bus.name}")
        self._thread.daemon = True
        self._thread.start()
        self.bus.subscribe(self._offer)

    def stop(self) -> None:
        """Unsubscribe and stop the thread."""
        self.bus.unsubscribe(self._offer)
        if self._thread is not None:
            while True:
                try:
                    self._queue.put_nowait(None)
                    break
                except queue.Full:
                    self._drain()
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def native_id(self) -> int | None:
        """The OS id of this object's thread (for CPU accounting), while it runs."""
        thread = self._thread
        return thread.native_id if thread is not None else None

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
                self.dropped += 1
        except queue.Empty:
            pass

    def _offer(self, frame: EncodedFrame) -> None:
        if self._want_key and not frame.keyframe:
            self.dropped += 1
            return
        self._want_key = False
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            # Behind: throw the backlog away and start again at the next keyframe.
            self._drain()
            self._want_key = True
            self.dropped += 1

    def _run(self) -> None:
        # PyAV's default, slice threading, and never frame threading: a packet made from
        # Python bytes is freed under the GIL, and with frame threads a worker may free one
        # while the codec's deallocation, which holds the GIL, waits for that worker. The
        # thread then deadlocks the whole process when it ends (seen in CI; reproduced by
        # tests/edge_agent/media/test_preview.py).
        codec = av.CodecContext.create("h264", "r")
        last = 0.0
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            try:
                pictures = codec.decode(av.Packet(frame.data))
            except av.FFmpegError as err:
                self.errors += 1
                log.debug("preview of %s: %s", self.bus.name, err)
                continue
            for picture in pictures:
                self.decoded += 1
                now = time.monotonic()
                if now - last < self._interval:
                    continue
                last = now
                try:
                    self._on_frame(picture)
                    self.delivered += 1
                except Exception:
                    self.errors += 1
                    log.exception("preview consumer of %s failed", self.bus.name)
