"""Watches an X display the way a person in the room would: what is on screen, and when.

FFmpeg's X11 grabber (through PyAV) takes the whole screen at a steady rate and stamps
each grab with the wall clock. For each tile the agent reports (``room.json`` in its
state directory: where each feed is drawn, and the feed's own size), the burned-in code
of the picture on screen is read back, so each grab tells which captured frame was on
the screen at that moment.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import av
import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.media import barcode


@dataclass(frozen=True)
class TileSpot:
    """Where a feed is drawn on the screen, and the feed's own size."""

    key: str
    x: int
    y: int
    w: int
    h: int
    src_w: int
    src_h: int


def read_tile(luma: npt.NDArray[np.uint8], spot: TileSpot) -> tuple[int, int] | None:
    """The burned-in (counter, capture_ms) of the picture in ``spot``, if it reads."""
    crop = luma[spot.y : spot.y + spot.h, spot.x : spot.x + spot.w]
    if crop.size == 0 or spot.src_w <= 0 or spot.src_h <= 0:
        return None
    # Only the top band holds the code: scale just that band back to the feed's size.
    band_h = max(1, round(spot.h * 64 / spot.src_h))
    band = cv2.resize(crop[:band_h], (spot.src_w, 64), interpolation=cv2.INTER_LINEAR)
    return barcode.read(band)


@dataclass
class Sighting:
    """One grab: when, and the code read in each tile (None: no code there)."""

    at: float
    codes: dict[str, tuple[int, int] | None]


@dataclass
class ScreenWatch:
    """Grabs ``display`` at ``fps`` in a thread; reads the tiles given by ``spots()``."""

    display: str
    width: int
    height: int
    spots: object  # Callable[[], list[TileSpot]]; kept loose for the thread
    fps: int = 30
    sightings: list[Sighting] = field(default_factory=list)
    error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start grabbing."""
        self._thread = threading.Thread(target=self._run, name="screen-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop grabbing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        options = {"video_size": f"{self.width}x{self.height}", "framerate": str(self.fps)}
        try:
            with av.open(self.display, format="x11grab", options=options) as grab:
                for frame in grab.decode(video=0):
                    if self._stop.is_set():
                        return
                    at = time.time()
                    if frame.pts is not None and frame.time_base is not None:
                        stamped = float(frame.pts * frame.time_base)
                        if abs(stamped - at) < 1.0:  # x11grab stamps grabs by the wall clock
                            at = stamped
                    spots = self.spots() if callable(self.spots) else []
                    if not spots:
                        continue
                    luma = frame.to_ndarray(format="gray")
                    self.sightings.append(Sighting(at, {s.key: read_tile(luma, s) for s in spots}))
        except (av.FFmpegError, OSError) as err:
            self.error = f"cannot grab {self.display}: {err}"


def first_seen(sightings: list[Sighting], key: str) -> dict[int, tuple[float, int]]:
    """For each frame counter seen in tile ``key``: (first time on screen, capture ms)."""
    seen: dict[int, tuple[float, int]] = {}
    for s in sightings:
        code = s.codes.get(key)
        if code is not None and code[0] not in seen:
            seen[code[0]] = (s.at, code[1])
    return seen
