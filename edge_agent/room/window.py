"""One display's SDL window: tile pictures, label bands, slates and the loudest-room marker.

Everything here runs on the screens' render thread. A tile's texture is exactly its
picture's size, so a new frame is scaled once (by swscale, straight from the decoder's
YUV to the window's BGRA) and the renderer only copies pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
import pygame
from pygame._sdl2.video import Renderer, Texture, Window

from edge_agent.profile import Display
from edge_agent.room.fonts import Labels
from edge_agent.room.grid import Rect
from edge_agent.room.layouts import Tile, fit

BACKGROUND = (16, 18, 24, 255)
BAND = (32, 36, 46, 255)
LOUDEST = (255, 176, 0, 255)  # amber: the room heard loudest right now
SLATE = (52, 56, 66, 255)
TEXT = (235, 235, 235)
STALE_S = 1.0  # a feed this long without a new frame shows the reconnecting slate
RECONNECTING = "正在重连 · reconnecting"
WAITING = "等待画面 · waiting"
IDLE = "当前无课 · no lesson"
EMPTY = "本屏无画面 · nothing to show"


@dataclass
class _TileView:
    """A tile's drawing state: its texture, its last frame and its label."""

    tile: Tile
    label: Texture | None = None
    picture: Texture | None = None
    rect: Rect | None = None  # the picture inside the tile, fitted to the frame's shape
    frame: av.VideoFrame | None = None  # the frame last scaled into ``picture``
    state: str = "waiting"  # waiting | live | stale
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
        self._renderer: Renderer | None = None
        self._views: list[_TileView] = []
        self._idle: list[Texture] = []
        self._loudest: str | None = None
        self._dirty = True
        self._slates: dict[str, Texture] = {}

    @property
    def renderer(self) -> Renderer:
        """The SDL renderer (``open`` first)."""
        if self._renderer is None:
            raise RuntimeError(f"display {self.display.name!r} is not open")
        return self._renderer

    def open(self) -> None:
        """Create the window and its renderer; raises ``pygame.error`` if SDL cannot."""
        d = self.display
        self._window = Window(
            f"classbridge {d.name}",
            size=(d.width, d.height),
            position=(d.x, d.y),
            borderless=d.fullscreen,
            always_on_top=d.fullscreen,
        )
        self._renderer = Renderer(self._window, accelerated=0)
        size = max(18, d.height // 30)
        for name, text in (("stale", RECONNECTING), ("waiting", WAITING)):
            self._slates[name] = self._text(text, size)

    def close(self) -> None:
        """Destroy the window (textures go with the renderer)."""
        self._views = []
        self._slates = {}
        self._renderer = None
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
        for view in self._views:
            got = frames.get(view.tile.source_key)
            state = "waiting" if got is None else "stale" if now - got[1] > STALE_S else "live"
            if state != view.state:
                if state == "stale":
                    view.slates += 1
                view.state = state
                self._dirty = True
            if got is not None and state == "live" and got[0] is not view.frame:
                self._scale(view, got[0])
                self._dirty = True
        return self._dirty

    def present(self) -> None:
        """Draw every tile and show the result."""
        r = self.renderer
        r.draw_color = BACKGROUND
        r.clear()
        for view in self._views:
            self._draw_tile(r, view)
        if not self._views:
            self._draw_idle(r)
        r.present()
        self.drawn += 1
        self._dirty = False

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Frames shown and slates entered, by source key, for the current tiles."""
        return (
            {v.tile.source_key: v.shown for v in self._views},
            {v.tile.source_key: v.slates for v in self._views},
        )

    def _scale(self, view: _TileView, frame: av.VideoFrame) -> None:
        tile = view.tile
        rect = fit(tile.rect, frame.width, frame.height)
        # YUV straight to the window's pixel format at the picture's size: one swscale pass.
        bgra = frame.reformat(rect.w, rect.h, "bgra", interpolation="FAST_BILINEAR")
        surface = pygame.image.frombuffer(
            np.ascontiguousarray(bgra.to_ndarray()).data, (rect.w, rect.h), "BGRA"
        )
        if view.picture is None or rect != view.rect:
            view.picture = Texture(self.renderer, (rect.w, rect.h), streaming=True)
        view.picture.update(surface)
        view.rect, view.frame = rect, frame
        view.shown += 1

    def _draw_tile(self, r: Renderer, view: _TileView) -> None:
        tile = view.tile
        loud = self._loudest is not None and tile.classroom_id == self._loudest
        if view.state == "live" and view.picture is not None and view.rect is not None:
            r.blit(view.picture, _sdl(view.rect))
        else:
            r.draw_color = SLATE
            r.fill_rect(_sdl(tile.rect))
            text = self._slates["stale" if view.state == "stale" else "waiting"]
            r.blit(text, text.get_rect(center=_centre(tile.rect)))
        if tile.band is not None:
            r.draw_color = LOUDEST if loud else BAND
            r.fill_rect(_sdl(tile.band))
            if view.label is not None:
                r.blit(view.label, view.label.get_rect(center=_centre(tile.band)))
        if loud:  # outside the picture, in the gap between tiles: the code stays clear
            r.draw_color = LOUDEST
            outline = pygame.Rect(tile.rect.x, tile.rect.y, tile.rect.w, tile.rect.h)
            for grow in range(2, 6):
                r.draw_rect(outline.inflate(2 * grow, 2 * grow))

    def _draw_idle(self, r: Renderer) -> None:
        lines = self._idle
        total = sum(t.height + 16 for t in lines)
        y = (self.display.height - total) // 2
        for text in lines:
            r.blit(text, text.get_rect(midtop=(self.display.width // 2, y)))
            y += text.height + 16

    def _text(self, text: str, size: int, max_width: int = 0) -> Texture:
        surface = self.labels.render(text, size, TEXT, max_width)
        return Texture.from_surface(self.renderer, surface)


def _sdl(rect: Rect) -> pygame.Rect:
    return pygame.Rect(rect.x, rect.y, rect.w, rect.h)


def _centre(rect: Rect) -> tuple[int, int]:
    return rect.x + rect.w // 2, rect.y + rect.h // 2
