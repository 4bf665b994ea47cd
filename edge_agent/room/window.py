"""One display's SDL window: tile pictures, label bands, slates and the loudest-room marker.

Everything here runs on the screens' render thread. The window is drawn on its own
surface (SDL's window framebuffer, shared with the X server through MIT-SHM), not through
a renderer: a new frame is scaled once by swscale, straight from the decoder's YUV to the
window's pixel format at the picture's size, and copied into place, one copy per frame.
Only the pictures that changed are copied; bands, slates and markers are drawn again only
when the layout, a feed's state or the loudest room changes. A renderer costs three more
full-picture copies (to its texture, the texture onto its back buffer, the back buffer's
clear): measured on the development machine, 1.15 ms a 720p picture against 0.5 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import av
import numpy as np
import pygame
from pygame._sdl2.video import Window

from edge_agent.profile import Display
from edge_agent.room.fonts import Labels
from edge_agent.room.grid import Rect
from edge_agent.room.layouts import Tile, fit

BACKGROUND = (16, 18, 24)
BAND = (32, 36, 46)
LOUDEST = (255, 176, 0)  # amber: the room heard loudest right now
SLATE = (52, 56, 66)
TEXT = (235, 235, 235)
STALE_S = 1.0  # a feed this long without a new frame shows the reconnecting slate
RECONNECTING = "正在重连 · reconnecting"
WAITING = "等待画面 · waiting"
IDLE = "当前无课 · no lesson"
EMPTY = "本屏无画面 · nothing to show"
# swscale's "bgra" is, as 32-bit words on a little-endian PC, the X server's usual 24-bit
# TrueColor layout (0x00RRGGBB): pictures are copied into such a window as they are.
XRGB_MASKS = (0xFF0000, 0x00FF00, 0x0000FF)


@dataclass
class _TileView:
    """A tile's drawing state: its last frame, its scaled picture and its label."""

    tile: Tile
    label: pygame.Surface | None = None
    picture: av.VideoFrame | None = None  # the last frame, scaled to ``rect`` in BGRA
    rect: Rect | None = None  # the picture inside the tile, fitted to the frame's shape
    frame: av.VideoFrame | None = None  # the decoded frame ``picture`` was made from
    state: str = "waiting"  # waiting | live | stale
    fresh: bool = False  # a new picture waits to be copied onto the window
    slates: int = 0
    shown: int = 0


class DisplayWindow:
    """A borderless window placed at the display's position, drawn from tile states."""

    def __init__(self, display: Display, labels: Labels) -> None:
        self.display = display
        self.labels = labels
        self.drawn = 0
        self.next_due = 0.0
        self._window: Window | None = None
        self._views: list[_TileView] = []
        self._idle: list[pygame.Surface] = []
        self._loudest: str | None = None
        self._dirty = True  # everything is drawn again (layout, a state, the marker)
        self._slates: dict[str, pygame.Surface] = {}
        self._direct = False  # the window's pixels take swscale's BGRA as they are

    @property
    def surface(self) -> pygame.Surface:
        """The window's own surface (``open`` first)."""
        if self._window is None:
            raise RuntimeError(f"display {self.display.name!r} is not open")
        return self._window.get_surface()

    def open(self) -> None:
        """Create the window; raises ``pygame.error`` if SDL cannot."""
        d = self.display
        self._window = Window(
            f"classbridge {d.name}",
            size=(d.width, d.height),
            position=(d.x, d.y),
            borderless=d.fullscreen,
            always_on_top=d.fullscreen,
        )
        surface = self._window.get_surface()
        self._direct = surface.get_bitsize() == 32 and surface.get_masks()[:3] == XRGB_MASKS
        size = max(18, d.height // 30)
        for name, text in (("stale", RECONNECTING), ("waiting", WAITING)):
            self._slates[name] = self._text(text, size)

    def close(self) -> None:
        """Destroy the window."""
        self._views = []
        self._slates = {}
        if self._window is not None:
            self._window.destroy()
            self._window = None

    def set_tiles(self, tiles: list[Tile], idle: list[str]) -> None:
        """A new layout (``idle`` lines are shown when there are no tiles)."""
        old = {v.tile.source_key: v for v in self._views}
        self._views = []
        band_font = max(14, self.display.height // 40)
        for tile in tiles:
            view = _TileView(tile)
            before = old.get(tile.source_key)
            if before is not None:  # keep the counters and the last state across a re-layout
                view.slates, view.shown, view.state = before.slates, before.shown, before.state
            if tile.band is not None:
                view.label = self._text(tile.label, band_font, max_width=tile.band.w - 8)
            self._views.append(view)
        self._idle = [self._text(line, max(24, self.display.height // 16)) for line in idle]
        self._dirty = True

    def set_loudest(self, classroom_id: str | None) -> None:
        """Mark this room's tile (a border round its picture and an amber label band)."""
        if classroom_id != self._loudest:
            self._loudest = classroom_id
            self._dirty = True

    def refresh(self, frames: dict[str, tuple[av.VideoFrame, float]], now: float) -> bool:
        """Scale the tiles whose source has a new frame; whether anything needs drawing."""
        changed = self._dirty
        for view in self._views:
            got = frames.get(view.tile.source_key)
            state = "waiting" if got is None else "stale" if now - got[1] > STALE_S else "live"
            if state != view.state:
                if state == "stale":
                    view.slates += 1
                view.state = state
                self._dirty = changed = True
            if got is not None and state == "live" and got[0] is not view.frame:
                self._scale(view, got[0])
                changed = True
        return changed

    def present(self) -> None:
        """Draw what changed and show the result."""
        if self._window is None:
            raise RuntimeError(f"display {self.display.name!r} is not open")
        surface = self._window.get_surface()
        if self._dirty:
            surface.fill(BACKGROUND)
            for view in self._views:
                self._draw_tile(surface, view)
            if not self._views:
                self._draw_idle(surface)
        else:
            for view in self._views:
                if view.fresh and view.state == "live":
                    self._copy_picture(surface, view)
        del surface  # its pixels must not be held while SDL updates the window
        self._window.flip()
        self.drawn += 1
        self._dirty = False

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Frames shown and slates entered, by source key, for the current tiles."""
        return (
            {v.tile.source_key: v.shown for v in self._views},
            {v.tile.source_key: v.slates for v in self._views},
        )

    def _scale(self, view: _TileView, frame: av.VideoFrame) -> None:
        rect = fit(view.tile.rect, frame.width, frame.height)
        if view.rect is not None and rect != view.rect:
            self._dirty = True  # the picture's shape changed: its letterbox is drawn again
        # YUV straight to the window's pixel format at the picture's size: one swscale pass.
        view.picture = frame.reformat(rect.w, rect.h, "bgra", interpolation="FAST_BILINEAR")
        view.rect, view.frame, view.fresh = rect, frame, True
        view.shown += 1

    def _copy_picture(self, surface: pygame.Surface, view: _TileView) -> None:
        picture, rect = view.picture, view.rect
        if picture is None or rect is None:
            return
        plane = picture.planes[0]
        words = np.frombuffer(memoryview(plane), np.uint32)
        src = words.reshape(rect.h, plane.line_size // 4)[:, : rect.w]
        if self._direct:
            buffer = surface.get_buffer()
            pixels = np.frombuffer(cast(Any, buffer), np.uint32).reshape(
                -1, surface.get_pitch() // 4
            )
            pixels[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w] = src
            del pixels, buffer  # unlock the surface
        else:  # another pixel format (a 16-bit desktop): SDL converts while it copies
            bgra = pygame.image.frombuffer(np.ascontiguousarray(src).data, (rect.w, rect.h), "BGRA")
            surface.blit(bgra, (rect.x, rect.y))
        view.fresh = False

    def _draw_tile(self, surface: pygame.Surface, view: _TileView) -> None:
        tile = view.tile
        loud = self._loudest is not None and tile.classroom_id == self._loudest
        if view.state == "live" and view.picture is not None:
            self._copy_picture(surface, view)
        else:
            surface.fill(SLATE, _sdl(tile.rect))
            text = self._slates["stale" if view.state == "stale" else "waiting"]
            surface.blit(text, text.get_rect(center=_centre(tile.rect)))
        if tile.band is not None:
            surface.fill(LOUDEST if loud else BAND, _sdl(tile.band))
            if view.label is not None:
                surface.blit(view.label, view.label.get_rect(center=_centre(tile.band)))
        if loud:  # outside the picture, in the gap between tiles: the code stays clear
            outline = pygame.Rect(tile.rect.x, tile.rect.y, tile.rect.w, tile.rect.h)
            for grow in range(2, 6):
                pygame.draw.rect(surface, LOUDEST, outline.inflate(2 * grow, 2 * grow), 1)

    def _draw_idle(self, surface: pygame.Surface) -> None:
        lines = self._idle
        total = sum(t.get_height() + 16 for t in lines)
        y = (self.display.height - total) // 2
        for text in lines:
            surface.blit(text, text.get_rect(midtop=(self.display.width // 2, y)))
            y += text.get_height() + 16

    def _text(self, text: str, size: int, max_width: int = 0) -> pygame.Surface:
        return self.labels.render(text, size, TEXT, max_width)


def _sdl(rect: Rect) -> pygame.Rect:
    return pygame.Rect(rect.x, rect.y, rect.w, rect.h)


def _centre(rect: Rect) -> tuple[int, int]:
    return rect.x + rect.w // 2, rect.y + rect.h // 2
