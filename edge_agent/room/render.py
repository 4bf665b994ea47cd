"""The screens' render loop: SDL set-up, events and paced redraws, on one thread."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import pygame

from edge_agent.room.fonts import Labels
from edge_agent.room.window import EMPTY, IDLE, DisplayWindow

if TYPE_CHECKING:
    from edge_agent.room.screens import RoomScreens

POLL_S = 0.05  # keyboard events and slate deadlines are looked at this often when idle
# The desktop lost or resized what a window showed (another window over it, a display
# turned on): the window is drawn again in full.
REDRAW_EVENTS = frozenset(
    (
        pygame.WINDOWEXPOSED,
        pygame.WINDOWSHOWN,
        pygame.WINDOWRESTORED,
        pygame.WINDOWSIZECHANGED,
        pygame.WINDOWMAXIMIZED,
    )
)


class RenderLoop:
    """Owns SDL for a ``RoomScreens``: opens the windows, then draws until told to stop."""

    def __init__(self, screens: RoomScreens) -> None:
        self.screens = screens
        self.labels = Labels()
        self.windows = [DisplayWindow(d, self.labels) for d in screens.displays]
        self.warning: str | None = None
        self._generation = -1
        self._name = ""
        self._cpu_start = 0.0

    def open(self) -> None:
        """Start SDL's video on the X display and open one window per display."""
        display = self.screens.displays[0].display
        # SDL reads DISPLAY when its video system starts; x11 only, never another screen.
        os.environ["DISPLAY"] = display
        os.environ["SDL_VIDEODRIVER"] = "x11"
        # The windows are drawn on their own framebuffers (framebuffer.py). Without this SDL
        # backs each with an OpenGL texture, which on a PC without a GPU driver is Mesa's
        # llvmpipe: 4-5 ms of CPU per update instead of 0.3 ms (XShm).
        os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")
        try:
            pygame.display.init()
            self.labels.open()
            for window in self.windows:
                window.open()
        except (pygame.error, OSError) as err:  # no X server, or an unreadable font
            raise RuntimeError(
                f"cannot open the room screens on X display {display} ({err}); check the "
                "classroom PC is logged in to its desktop and the profile's displays[].display"
            ) from err
        self.warning = self.labels.warning
        self._cpu_start = time.thread_time()

    def close(self) -> None:
        """Destroy the windows and stop SDL's video."""
        for window in self.windows:
            window.close()
        pygame.display.quit()

    def run(self) -> None:
        """Draw until the screens are stopped."""
        screens = self.screens
        timeout = 0.0
        while not screens._stop.is_set():
            screens._wake.wait(timeout)
            screens._wake.clear()
            self._events()
            timeout = self._tick(time.monotonic())

    def _events(self) -> None:
        for event in pygame.event.get():
            if event.type == pygame.KEYDOWN:
                self.screens._key(pygame.key.name(event.key))
            elif event.type in REDRAW_EVENTS:  # only what changes is drawn: draw it all
                for window in self.windows:
                    window.exposed()

    def _tick(self, now: float) -> float:
        """Redraw the displays that are due and have changes; how long to wait next."""
        snap = self.screens._snapshot(self._generation)
        if snap.generation != self._generation or snap.room_name != self._name:
            self._generation, self._name = snap.generation, snap.room_name
            idle = [EMPTY] if snap.in_lesson else [snap.room_name, IDLE]
            for window in self.windows:
                window.set_tiles(snap.tiles[window.display.name], idle)
        wait = POLL_S
        drew = False
        for window in self.windows:
            window.set_loudest(snap.loudest)
            if now < window.next_due:
                wait = min(wait, window.next_due - now)
                continue
            if window.refresh(snap.frames, now):
                window.present()
                window.next_due = now + 1.0 / window.display.frame_rate
                drew = True
        if drew:
            self._publish()
        return max(0.0, wait)

    def _publish(self) -> None:
        shown: dict[str, int] = {}
        slates: dict[str, int] = {}
        for window in self.windows:
            s, sl = window.counts()
            shown.update(s)
            slates.update(sl)
        self.screens._publish(
            {
                "drawn": {w.display.name: w.drawn for w in self.windows},
                "shown": shown,
                "slates": slates,
                "render_cpu_s": time.thread_time() - self._cpu_start,
            }
        )
