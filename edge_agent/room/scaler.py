"""Scale a decoded frame straight into a window's pixels: swscale, called through ctypes.

PyAV's ``reformat`` makes a new frame for every picture (3.4 MB at 720p, allocated,
faulted in and freed each time) that then has to be copied into the window. Called
directly, swscale writes the converted picture in place: one pass over the pixels instead
of three. The functions are those of the libswscale and libavutil PyAV itself loaded;
ctypes lets go of the interpreter lock while swscale works. The conversion is the one
``reformat`` does: the frame's own colour matrix (BT.601 when unspecified), its own
range, bilinear ("fast") scaling, on the calling thread only.
"""

from __future__ import annotations

import ctypes
import pathlib
from functools import cache

import av
import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

SWS_FAST_BILINEAR = 1
# swscale writes whole SIMD blocks, past a row's last pixel (FFmpeg's own frames have
# their rows padded for it): up to 6 pixels here, and never more than FFmpeg's stride
# alignment, 64 bytes. What it writes there is put back (see ``DirectScaler.scale_into``).
OVERRUN = 64
AVCOL_SPC_UNSPECIFIED = 2


class _Lib:
    """The libswscale and libavutil functions used, with their C signatures."""

    def __init__(self) -> None:
        sws, util = ctypes.CDLL(_loaded("libswscale")), ctypes.CDLL(_loaded("libavutil"))
        p, i = ctypes.c_void_p, ctypes.c_int
        ints4 = ctypes.POINTER(ctypes.c_int)
        self.get_cached = sws.sws_getCachedContext
        self.get_cached.argtypes = [p, i, i, i, i, i, i, i, p, p, p]
        self.get_cached.restype = p
        self.scale = sws.sws_scale
        self.scale.argtypes = [p, p, p, i, i, p, p]
        self.scale.restype = i
        self.free = sws.sws_freeContext
        self.free.argtypes = [p]
        self.free.restype = None
        self.coefficients = sws.sws_getCoefficients
        self.coefficients.argtypes = [i]
        self.coefficients.restype = ints4
        self.get_details = sws.sws_getColorspaceDetails
        self.get_details.argtypes = [p, ctypes.POINTER(ints4), ints4, ctypes.POINTER(ints4)]
        self.get_details.argtypes += [ints4, ints4, ints4, ints4]
        self.get_details.restype = i
        self.set_details = sws.sws_setColorspaceDetails
        self.set_details.argtypes = [p, ints4, i, ints4, i, i, i, i]
        self.set_details.restype = i
        self.pix_fmt = util.av_get_pix_fmt
        self.pix_fmt.argtypes = [ctypes.c_char_p]
        self.pix_fmt.restype = i


def _loaded(stem: str) -> str:
    """The path of the library PyAV loaded (``stem`` like ``libswscale``)."""
    for line in pathlib.Path("/proc/self/maps").read_text().splitlines():
        path = line.split(maxsplit=5)[-1]
        name = path.rsplit("/", 1)[-1]
        if name.startswith((f"{stem}-", f"{stem}.so")):
            return path
    raise OSError(f"{stem} is not loaded in this process (is PyAV installed?)")


@cache
def _lib() -> _Lib:
    return _Lib()


@cache
def pixel_format(name: str) -> int:
    """FFmpeg's number for a pixel format name (``ValueError`` if it has none)."""
    number = int(_lib().pix_fmt(name.encode()))
    if number < 0:
        raise ValueError(f"FFmpeg knows no pixel format {name!r}")
    return number


class DirectScaler:
    """Converts frames of one tile into memory given by address (one swscale context)."""

    def __init__(self, dst_format: str) -> None:
        self._lib = _lib()
        self._dst_format = pixel_format(dst_format)
        self._ctx: int | None = None
        self._key: tuple[int, ...] | None = None
        self._src = (ctypes.c_void_p * 4)()
        self._src_stride = (ctypes.c_int * 4)()
        self._dst = (ctypes.c_void_p * 4)()
        self._dst_stride = (ctypes.c_int * 4)()

    def scale_into(
        self,
        frame: av.VideoFrame,
        memory: npt.NDArray[np.uint8],
        offset: int,
        pitch: int,
        width: int,
        height: int,
    ) -> None:
        """Write ``frame`` scaled to ``width`` x ``height`` 32-bit pixels into ``memory``
        (a flat byte array: a window's pixels) from byte ``offset``, rows ``pitch`` bytes
        apart, changing no byte outside that rectangle. ``ValueError`` if it (with
        swscale's overrun) does not lie inside ``memory``."""
        end = offset + (height - 1) * pitch + width * 4 + OVERRUN
        if offset < 0 or width <= 0 or height <= 0 or width * 4 > pitch or end > memory.size:
            raise ValueError(
                f"a {width}x{height} picture at byte {offset} (rows {pitch} bytes apart) "
                f"does not fit {memory.size} bytes"
            )
        # What lies just right of each row: the next tile, a border, the next row's start.
        # Where rows are less than OVERRUN apart, the rest is the picture's next row, which
        # swscale writes after this one's overrun: only the last row's is kept whole.
        tail = as_strided(memory[offset + width * 4 :], (height, OVERRUN), (pitch, 1))
        keep = min(OVERRUN, pitch - width * 4)
        kept, kept_last = tail[:, :keep].copy(), tail[-1].copy()
        self.scale(frame, memory.ctypes.data + offset, pitch, width, height)
        tail[:, :keep] = kept
        tail[-1] = kept_last

    def scale(
        self, frame: av.VideoFrame, address: int, pitch: int, width: int, height: int
    ) -> None:
        """Write ``frame`` scaled to ``width`` x ``height`` at ``address`` (rows ``pitch``
        bytes apart). Unchecked: swscale may write up to ``OVERRUN`` bytes past each row,
        so the memory must allow it (``scale_into`` checks and repairs)."""
        lib = self._lib
        src_format = pixel_format(frame.format.name)
        colorspace = int(frame.colorspace)
        key = (frame.width, frame.height, src_format, width, height, colorspace)
        if key != self._key:
            ctx = lib.get_cached(
                self._ctx, frame.width, frame.height, src_format,
                width, height, self._dst_format, SWS_FAST_BILINEAR, None, None, None,
            )  # fmt: skip
            if not ctx:
                raise RuntimeError(
                    f"swscale cannot convert {frame.format.name} {frame.width}x{frame.height} "
                    f"to {width}x{height}"
                )
            if colorspace != AVCOL_SPC_UNSPECIFIED or (self._key or key)[5] != colorspace:
                self._colour(ctx, colorspace)
            self._ctx, self._key = ctx, key
        planes = frame.planes
        for n in range(4):
            plane = planes[n] if n < len(planes) else None
            self._src[n] = plane.buffer_ptr if plane is not None else None
            self._src_stride[n] = plane.line_size if plane is not None else 0
        self._dst[0], self._dst_stride[0] = address, pitch
        rows = lib.scale(self._ctx, self._src, self._src_stride, 0, frame.height,
                         self._dst, self._dst_stride)  # fmt: skip
        if rows != height:
            raise RuntimeError(f"swscale wrote {rows} rows of {height} ({frame.format.name})")

    def close(self) -> None:
        """Free the swscale context."""
        if self._ctx is not None:
            self._lib.free(self._ctx)
            self._ctx, self._key = None, None

    def __del__(self) -> None:
        self.close()

    def _colour(self, ctx: int, colorspace: int) -> None:
        """Use the frame's colour matrix (as ``reformat`` does; swscale's default is the
        unspecified one's, BT.601); the ranges stay swscale's (limited for YUV, full for a
        JPEG-range format and for RGB)."""
        lib = self._lib
        ints4 = ctypes.POINTER(ctypes.c_int)
        inv, table = ints4(), ints4()
        src_range, dst_range = ctypes.c_int(), ctypes.c_int()
        b, c, s = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        lib.get_details(ctx, ctypes.byref(inv), ctypes.byref(src_range),
                        ctypes.byref(table), ctypes.byref(dst_range),
                        ctypes.byref(b), ctypes.byref(c), ctypes.byref(s))  # fmt: skip
        coefficients = lib.coefficients(colorspace)
        lib.set_details(ctx, coefficients, src_range.value, coefficients,
                        dst_range.value, b.value, c.value, s.value)  # fmt: skip
