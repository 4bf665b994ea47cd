"""Playing a recorded lesson's file at its own pace: decoded on a thread of its own, each
frame handed over when its time comes, as a remote classroom's frames arrive live."""

from __future__ import annotations

import logging
import pathlib
import threading
import time
from collections.abc import Callable

import av

log = logging.getLogger(__name__)

# Frames go out this far ahead of their time at most (the playout buffer smooths the rest).
LEAD_S = 0.02

Deliver = Callable[[str, av.VideoFrame | av.AudioFrame], None]  # "video" / "audio", frame


class FilePlayer:
    """Decodes ``path`` and calls ``deliver`` (from its thread) for each frame on time."""

    def __init__(self, path: pathlib.Path, deliver: Deliver, name: str = "playback") -> None:
        self.path = path
        self._deliver = deliver
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.played_s = 0.0  # media time of the last frame handed over
        self.started_at: float | None = None  # wall clock of the first frame
        self.error = ""
        self.finished = threading.Event()  # the file played to its end, or failed

    def start(self) -> None:
        """Start playing now."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop playing and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            with av.open(str(self.path)) as container:
                streams = [s for s in container.streams if s.type in ("video", "audio")]
                if not streams:
                    raise ValueError("it holds no video or audio stream")
                self._play(container, streams)
        except (av.FFmpegError, OSError, ValueError) as err:
            self.error = f"{self.path.name} could not be played: {err}"
            log.error("playback: %s", self.error)
        finally:
            self.finished.set()

    def _play(
        self, container: av.container.InputContainer, streams: list[av.stream.Stream]
    ) -> None:
        first: float | None = None
        began = time.monotonic()
        for packet in container.demux(streams):
            if self._stop.is_set():
                return
            for frame in packet.decode():
                if not isinstance(frame, av.VideoFrame | av.AudioFrame):
                    continue
                if frame.pts is None or frame.time_base is None:
                    continue
                at = float(frame.pts * frame.time_base)
                if first is None:
                    first, began = at, time.monotonic()
                    self.started_at = time.time()
                wait = (at - first) - (time.monotonic() - began) - LEAD_S
                if wait > 0 and self._stop.wait(wait):
                    return
                kind = "video" if isinstance(frame, av.VideoFrame) else "audio"
                self._deliver(kind, frame)
                self.played_s = max(self.played_s, at - first)
