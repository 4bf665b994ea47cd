"""One display's SDL window: tile pictures, label bands, slates and the loudest-room marker.

Everything here runs on the screens' render thread. The window is drawn on its own
framebuffer (``framebuffer.py``), not through a renderer. A new frame is scaled once, by
swscale from the decoder's YUV straight into the window's pixels at the picture's place
(``scaler.py``; one scaler per tile, kept: making one costs more than a scale); only the
pictures that changed are drawn and sent to the X server. Background, bands,
labels, slates and the loudest-room marker are drawn again only when the layout, a feed's
state (waiting, live, reconnecting) or the loudest room changes, or the window was
exposed. At the lead this cut the screens' CPU per picture by about 40 % (see README).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import av
import pygame
from pygame._sdl2.video import Window

from edge_agent.profile import Display
from edge_agent.room.fonts import Labels
from edge_agent.room.framebuffer import Framebuffer
from edge_agent.room.grid import Rect
from edge_agent.room.layouts import Tile, fit
from edge_agent.room.scaler import DirectScaler

log = logging.getLogger(__name__)

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


@dataclass
class _TileView:
    """A tile's drawing state: its scaler, its last frame and its label."""

    tile: Tile
    label: pygame.Surface | None = None
    rect: Rect | None = None  # the picture inside the tile, fitted to the frame's shape
    frame: av.VideoFrame | None = None  # the newest decoded frame of the tile's feed
    state: str = "waiting"  # waiting | live | stale
    fresh: bool = False  # ``frame`` is not on the window yet
    slates: int = 0
    shown: int = 0
    scaler: DirectScaler | None = None  # swscale's context, made once, not per frame
    misfit: bool = False  # the picture did not fit the window (said once in the log)


class DisplayWindow:
    """A borderless window placed at the display's position, drawn from tile states."""

    def __init__(self, display: Display, labels: Labels) -> None:
        self.display = display
        self.labels = labels
        self.drawn = 0
        self.next_due = 0.0
        self._window: Window | None = None
        self._fb: Framebuffer | None = None
        self._views: list[_TileView] = []
        self._idle: list[pygame.Surface] = []
        self._loudest: str | None = None
        self._dirty = True  # everything is drawn again (layout, a state, the marker, exposed)
        self._slates: dict[str, pygame.Surface] = {}

    @property
    def framebuffer(self) -> Framebuffer:
        """The window's own pixels (``open`` first)."""
        if self._fb is None:
            raise RuntimeError(f"display {self.display.name!r} is not open")
        return self._fb

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
        self._fb = Framebuffer(self._window.id)
        self._fb.acquire()  # an unusable pixel format is an error now, not at the first frame
        size = max(18, d.height // 30)
        for name, text in (("stale", RECONNECTING), ("waiting", WAITING)):
            self._slates[name] = self._text(text, size)

    def close(self) -> None:
        """Destroy the window (and forget its framebuffer, which goes with it)."""
        self._views = []
        self._slates = {}
        self._fb = None
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
                view.scaler = before.scaler
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

    def exposed(self) -> None:
        """The window was shown, uncovered or resized: draw all of it again."""
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
        """Draw what changed (all of it after a change of layout or state) and show it."""
        fb = self.framebuffer
        surface = fb.acquire()
        if self._dirty:
            surface.fill(BACKGROUND)
            for view in self._views:
                self._draw_tile(surface, view)
            if not self._views:
                self._draw_idle(surface)
            sent = [Rect(0, 0, self.display.width, self.display.height)]
        else:
            sent = [
                self._draw_picture(view)
                for view in self._views
                if view.fresh and view.state == "live" and view.rect is not None
            ]
        del surface  # a view of SDL's memory: never kept past this redraw
        fb.update(sent)
        self.drawn += 1
        self._dirty = False

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Frames shown and slates entered, by source key, for the current tiles."""
        return (
            {v.tile.source_key: v.shown for v in self._views},
            {v.tile.source_key: v.slates for v in self._views},
        )

    def _scale(self, view: _TileView, frame: av.VideoFrame) -> None:
        """Take a tile's new frame (it is scaled onto the window when drawn)."""
        rect = fit(view.tile.rect, frame.width, frame.height)
        if view.rect is not None and rect != view.rect:
            self._dirty = True  # the picture's shape changed: its letterbox is drawn again
        view.rect, view.frame, view.fresh = rect, frame, True
        view.shown += 1

    def _draw_picture(self, view: _TileView) -> Rect:
        """Scale the tile's frame into its place on the window; the rectangle it covers."""
        fb, frame, rect = self.framebuffer, view.frame, view.rect
        assert frame is not None and rect is not None
        view.fresh = False
        if view.scaler is None:
            view.scaler = DirectScaler(fb.pixel_format)
        # YUV straight to the window's pixels at the picture's size: one swscale pass, on
        # this thread, where the room's CPU accounting sees it.
        try:
            if not fb.holds(rect.x, rect.y, rect.w, rect.h):
                raise ValueError(f"the window is {fb.width}x{fb.height}")
            view.scaler.scale_into(
                frame, fb.memory, rect.y * fb.pitch + rect.x * 4, fb.pitch, rect.w, rect.h
            )
        except ValueError as err:  # the desktop shrank the window: draw nothing out of it
            if view.misfit:
                return rect
            view.misfit = True
            log.warning(
                "display %r: tile %s at %s does not fit (%s); not drawn: check the "
                "display's width and height in the profile",
                self.display.name, view.tile.source_key, rect, err,
            )  # fmt: skip
        return rect

    def _draw_tile(self, surface: pygame.Surface, view: _TileView) -> None:
        tile = view.tile
        loud = self._loudest is not None and tile.classroom_id == self._loudest
        if view.state == "live" and view.frame is not None and view.rect is not None:
            self._draw_picture(view)
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
