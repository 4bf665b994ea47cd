"""The panel output: the remote classroom full-screen on the 80-inch panel.

A real SDL2 window (through pygame) on the box's X display, drawn by its own thread at up
to 30 fps from the newest decoded frames. The profile's ``[output]`` names the layout:

- ``remote_full_local_corner``: the remote teacher fills the screen, the local room sits
  in the bottom-right corner at a quarter of the width;
- ``side_by_side``: remote on the left, local on the right, each half the width;
- ``remote_only``: the remote teacher alone.

Until the remote side sends a picture the window shows a dark "waiting" screen, so the
technician can tell a working panel from a frozen one.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import av
import numpy as np
import numpy.typing as npt

from edge_agent.profile import PanelOutput

BACKGROUND = (16, 18, 24)
FRAME_INTERVAL_S = 1 / 30


@dataclass(frozen=True)
class Rect:
    """A place on the screen, in pixels."""

    x: int
    y: int
    w: int
    h: int


def layout_rects(layout: str, width: int, height: int) -> dict[str, Rect]:
    """Where the remote and the local pictures go for a layout on a screen this size."""
    if layout == "remote_only":
        return {"remote": Rect(0, 0, width, height)}
    if layout == "side_by_side":
        half = width // 2
        h = min(height, half * 9 // 16)
        y = (height - h) // 2
        return {"remote": Rect(0, y, half, h), "local": Rect(half, y, width - half, h)}
    if layout == "remote_full_local_corner":
        w = width // 4
        h = w * 9 // 16
        margin = max(8, width // 80)
        return {
            "remote": Rect(0, 0, width, height),
            "local": Rect(width - w - margin, height - h - margin, w, h),
        }
    raise ValueError(
        f"unknown panel layout {layout!r}; use remote_full_local_corner, side_by_side "
        "or remote_only"
    )


class PanelWindow:
    """Shows the newest remote (and local) frame in a window on ``output.display``."""

    def __init__(self, output: PanelOutput) -> None:
        self.output = output
        self.rects = layout_rects(output.layout, output.width, output.height)
        self._latest: dict[str, av.VideoFrame] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.drawn = 0
        self.shown: dict[str, int] = {"remote": 0, "local": 0}

    def start(self, timeout: float = 5.0) -> None:
        """Open the window; raises ``RuntimeError`` naming the display if it cannot."""
        self._thread = threading.Thread(target=self._run, name="panel-output", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        if self.error is not None:
            raise RuntimeError(self.error)

    def stop(self) -> None:
        """Close the window."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def show(self, place: str, frame: av.VideoFrame) -> None:
        """Offer a decoded frame for ``remote`` or ``local`` (the newest one wins)."""
        if place in self.rects:
            with self._lock:
                self._latest[place] = frame

    def _run(self) -> None:
        import pygame  # SDL reads DISPLAY when the video system starts

        os.environ["DISPLAY"] = self.output.display
        os.environ["SDL_VIDEODRIVER"] = "x11"  # never fall back to another screen
        os.environ.setdefault("SDL_RENDER_DRIVER", "software")
        try:
            pygame.display.init()
            flags = pygame.FULLSCREEN if self.output.fullscreen else 0
            screen = pygame.display.set_mode((self.output.width, self.output.height), flags)
            pygame.display.set_caption("classbridge panel")
        except pygame.error as err:
            self.error = (
                f"cannot open the panel window on display {self.output.display} ({err}); "
                "check the panel PC is logged in to its desktop, or set output.display"
            )
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                pygame.event.pump()
                with self._lock:
                    frames = dict(self._latest)
                    self._latest.clear()
                if frames or self.drawn == 0:
                    if self.drawn == 0 or "remote" in frames:
                        screen.fill(BACKGROUND)
                    for place in ("remote", "local"):
                        frame = frames.get(place)
                        rect = self.rects.get(place)
                        if frame is None or rect is None:
                            continue
                        rgb = _rgb(frame, rect.w, rect.h)
                        surface = pygame.image.frombuffer(rgb.tobytes(), (rect.w, rect.h), "RGB")
                        screen.blit(surface, (rect.x, rect.y))
                        self.shown[place] += 1
                    pygame.display.flip()
                    self.drawn += 1
                self._stop.wait(max(0.0, FRAME_INTERVAL_S - (time.monotonic() - started)))
        finally:
            pygame.display.quit()


def _rgb(frame: av.VideoFrame, width: int, height: int) -> npt.NDArray[np.uint8]:
    return np.asarray(frame.reformat(width, height, "rgb24").to_ndarray(), dtype=np.uint8)
