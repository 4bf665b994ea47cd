"""A window's own pixels (SDL's window surface), reached through SDL's C API by ctypes.

pygame 2.6 gives a window either a renderer or nothing: its Python API has no window
surface. A renderer costs three full-picture copies per redraw (the picture into its
texture, the texture onto the back buffer, the back buffer's clear) and always sends the
whole window to the X server. Here swscale writes each picture straight into the
window's framebuffer (with ``SDL_FRAMEBUFFER_ACCELERATION=0`` an XShm image shared with
the X server, see ``scaler.py``), and only the rectangles that changed are sent
(``SDL_UpdateWindowSurfaceRects``).

The functions are called on the SDL library pygame itself loaded (found in the process's
memory map), so the window ids are the same. ctypes lets go of the interpreter lock for
each call: the X round trip of an update does not hold up the sound threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import pathlib
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pygame

from edge_agent.room.grid import Rect

# A window's 32-bit pixel layouts (red, green, blue masks) and their names for swscale
# and pygame: the X server's usual 24-bit TrueColor (0x00RRGGBB words, bytes B G R X on a
# little-endian PC) and its mirror image.
LAYOUTS: dict[tuple[int, int, int], tuple[str, Literal["BGRA", "RGBX"]]] = {
    (0xFF0000, 0x00FF00, 0x0000FF): ("bgra", "BGRA"),
    (0x0000FF, 0x00FF00, 0xFF0000): ("rgba", "RGBX"),
}


class _SdlRect(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("w", ctypes.c_int), ("h", ctypes.c_int)]


class _PixelFormat(ctypes.Structure):
    """The head of SDL 2's ``SDL_PixelFormat`` (only what is read here)."""

    _fields_ = [
        ("format", ctypes.c_uint32),
        ("palette", ctypes.c_void_p),
        ("bits_per_pixel", ctypes.c_uint8),
        ("bytes_per_pixel", ctypes.c_uint8),
        ("padding", ctypes.c_uint8 * 2),
        ("r_mask", ctypes.c_uint32),
        ("g_mask", ctypes.c_uint32),
        ("b_mask", ctypes.c_uint32),
        ("a_mask", ctypes.c_uint32),
    ]


class _Surface(ctypes.Structure):
    """The head of SDL 2's ``SDL_Surface`` (a stable ABI across SDL 2 releases)."""

    _fields_ = [
        ("flags", ctypes.c_uint32),
        ("format", ctypes.POINTER(_PixelFormat)),
        ("w", ctypes.c_int),
        ("h", ctypes.c_int),
        ("pitch", ctypes.c_int),
        ("pixels", ctypes.c_void_p),
    ]


def _loaded_sdl() -> ctypes.CDLL:
    """The SDL 2 library already in this process (pygame's own copy, or the system's)."""
    for line in pathlib.Path("/proc/self/maps").read_text().splitlines():
        path = line.split(maxsplit=5)[-1]
        if "/libSDL2-2" in path and ".so" in path:
            return ctypes.CDLL(path)
    name = ctypes.util.find_library("SDL2-2.0") or ctypes.util.find_library("SDL2")
    if name is None:
        raise OSError("the SDL 2 library pygame uses was not found in this process")
    return ctypes.CDLL(name)


class _Sdl:
    """The few SDL functions used, with their C signatures."""

    def __init__(self) -> None:
        lib = _loaded_sdl()
        self.window_from_id = lib.SDL_GetWindowFromID
        self.window_from_id.argtypes = [ctypes.c_uint32]
        self.window_from_id.restype = ctypes.c_void_p
        self.window_surface = lib.SDL_GetWindowSurface
        self.window_surface.argtypes = [ctypes.c_void_p]
        self.window_surface.restype = ctypes.POINTER(_Surface)
        self.update_rects = lib.SDL_UpdateWindowSurfaceRects
        self.update_rects.argtypes = [ctypes.c_void_p, ctypes.POINTER(_SdlRect), ctypes.c_int]
        self.update_rects.restype = ctypes.c_int
        self.error = lib.SDL_GetError
        self.error.argtypes = []
        self.error.restype = ctypes.c_char_p

    def last_error(self) -> str:
        raw = self.error()
        return raw.decode(errors="replace") if raw else "unknown SDL error"


class Framebuffer:
    """The pixels of one SDL window: a pygame surface and a numpy view over the same memory.

    Call :meth:`acquire` before drawing in each redraw: SDL makes a new framebuffer when
    the window's size changes, and the views must never outlive the one they point at.
    """

    def __init__(self, window_id: int) -> None:
        self._sdl = _Sdl()
        self._window = self._sdl.window_from_id(window_id)
        if not self._window:
            raise pygame.error(f"SDL has no window {window_id} ({self._sdl.last_error()})")
        self._key: tuple[int, int, int, int, int] | None = None
        self._surface: pygame.Surface | None = None
        self.memory: npt.NDArray[np.uint8] = np.zeros(0, np.uint8)  # the pixels' bytes
        self.pitch = 0
        self.width = 0
        self.height = 0
        self.pixel_format = "bgra"  # the pixels' layout, as FFmpeg names it

    def acquire(self) -> pygame.Surface:
        """The window's pixels as a surface to draw on (``address`` etc. are set too)."""
        ptr = self._sdl.window_surface(self._window)
        if not ptr:
            raise pygame.error(f"no window surface: {self._sdl.last_error()}")
        s = ptr.contents
        key = (ctypes.addressof(s), s.pixels or 0, s.w, s.h, s.pitch)
        if key != self._key or self._surface is None:
            self._wrap(s)
            self._key = key
        assert self._surface is not None
        return self._surface

    def holds(self, x: int, y: int, w: int, h: int) -> bool:
        """Whether the rectangle lies inside the window's pixels (checked before any
        write by address: a wrong one would corrupt memory, not raise)."""
        return min(x, y) >= 0 and min(w, h) > 0 and x + w <= self.width and y + h <= self.height

    def update(self, rects: Sequence[Rect]) -> None:
        """Send these rectangles of the window to the screen (all of it: one full rect)."""
        if not rects:
            return
        array = (_SdlRect * len(rects))(*(_SdlRect(r.x, r.y, r.w, r.h) for r in rects))
        if self._sdl.update_rects(self._window, array, len(rects)) != 0:
            raise pygame.error(f"window update failed: {self._sdl.last_error()}")

    def _wrap(self, s: _Surface) -> None:
        fmt = s.format.contents
        masks = (fmt.r_mask, fmt.g_mask, fmt.b_mask)
        if fmt.bytes_per_pixel != 4 or masks not in LAYOUTS:
            raise pygame.error(
                f"the window's pixel format ({fmt.bits_per_pixel} bits, masks "
                f"{fmt.r_mask:#x}/{fmt.g_mask:#x}/{fmt.b_mask:#x}) is not supported; run "
                "the desktop at 24 bits of colour (DefaultDepth 24 in xorg.conf)"
            )
        ffmpeg, pygame_layout = LAYOUTS[masks]
        memory: Any = (ctypes.c_uint8 * (s.pitch * s.h)).from_address(s.pixels)
        # The surface is pitch/4 pixels wide so that its rows are SDL's rows; drawing is
        # clipped to the window's own width.
        surface = pygame.image.frombuffer(memory, (s.pitch // 4, s.h), pygame_layout)
        surface.set_clip(pygame.Rect(0, 0, s.w, s.h))
        self._surface = surface
        self.memory = np.frombuffer(memory, np.uint8)  # row after row, ``pitch`` bytes apart
        self.pitch, self.width, self.height = s.pitch, s.w, s.h
        self.pixel_format = ffmpeg
