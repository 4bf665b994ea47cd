"""Movie mode (电影模式): one programme picture with a picture-in-picture inset.

The main picture is the shot on air scaled to the output size; the inset is another source
at about a quarter of the width in a corner, with a thin border: the board while the
teacher is on air, the teacher while the board, the panel or a student is
(:data:`INSET_FOR`).

Everything stays in YUV 4:2:0, the form decoded camera frames and the encoder both use:
PyAV's ``reformat`` (swscale) scales each source once, and the inset is pasted into the
main picture's three planes with numpy slices, so no colour conversion is ever made.
A yuv420p picture as a numpy array is PyAV's layout: shape ``(height * 3 // 2, width)``,
the Y plane, the U plane and the V plane one after the other (:func:`planes` splits it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

import av
import numpy as np
import numpy.typing as npt

from edge_agent.director.rules import DEFAULT_TARGETS, Shot, Target

Yuv = npt.NDArray[np.uint8]
Corner = Literal["top_left", "top_right", "bottom_left", "bottom_right"]

# The source role shown in the inset while each shot is on air.
INSET_FOR: Final[Mapping[Shot, str]] = MappingProxyType(
    {
        "teacher_wide": "board",
        "teacher_medium": "board",
        "board": "teacher",
        "panel": "teacher",
        "student": "teacher",
    }
)


@dataclass(frozen=True, slots=True)
class PipLayout:
    """Output size and where the inset goes."""

    width: int = 1280
    height: int = 720
    inset: float = 0.25
    """The inset's width as a fraction of the output's; it keeps the output's aspect."""
    corner: Corner = "bottom_right"
    margin: float = 0.025
    """Gap between the inset and the frame's edges, as a fraction of the output's width."""
    border_px: int = 2
    """A border this wide (even, 0 for none) around the inset, in ``border_luma``."""
    border_luma: int = 235

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2 or self.width < 64 or self.height < 64:
            raise ValueError(f"output {self.width}x{self.height} must be even and ≥ 64x64")
        if not 0.05 <= self.inset <= 0.5:
            raise ValueError(f"inset {self.inset} must be within 0.05..0.5 of the width")
        if self.border_px % 2 or self.border_px < 0:
            raise ValueError(f"border_px {self.border_px} must be even and ≥ 0")

    def inset_box(self) -> tuple[int, int, int, int]:
        """The inset picture's ``(x, y, width, height)`` in the output, all even."""
        w = _even(self.width * self.inset)
        h = _even(w * self.height / self.width)
        gap = _even(self.width * self.margin) + self.border_px
        x = gap if self.corner.endswith("left") else self.width - gap - w
        y = gap if self.corner.startswith("top") else self.height - gap - h
        return x, y, w, h


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def yuv_array(frame: av.VideoFrame) -> Yuv:
    """A yuv420p frame's pixels in PyAV's layout (a new array we may write into)."""
    arr = frame.to_ndarray()
    if arr.dtype != np.uint8:
        raise TypeError(f"expected 8-bit yuv420p, got {frame.format.name} as {arr.dtype}")
    return arr.astype(np.uint8, copy=False)


def planes(yuv: Yuv) -> tuple[Yuv, Yuv, Yuv]:
    """Views (writable into ``yuv``) of the Y, U and V planes of a yuv420p array in
    PyAV's layout: the three planes one after the other, wrapped at ``width``."""
    rows, width = yuv.shape
    height = rows * 2 // 3
    if rows != height * 3 // 2 or height % 2 or width % 2:
        raise ValueError(f"{yuv.shape} is not a yuv420p picture with even sides")
    if not yuv.flags.c_contiguous:
        raise ValueError("a yuv420p array must be C-contiguous to be split into planes")
    flat = yuv.reshape(-1)
    luma, chroma = height * width, (height // 2) * (width // 2)
    y = yuv[:height]
    u = flat[luma : luma + chroma].reshape(height // 2, width // 2)
    v = flat[luma + chroma :].reshape(height // 2, width // 2)
    return y, u, v


def paste(dst: Yuv, src: Yuv, x: int, y: int, border_px: int = 0, border_luma: int = 235) -> None:
    """Copy the yuv420p picture ``src`` into ``dst`` at even ``(x, y)``, in place.

    A border of ``border_px`` (even) is drawn around it in grey ``border_luma``.
    """
    if x % 2 or y % 2:
        raise ValueError(f"the inset's corner ({x}, {y}) must be at even coordinates")
    (dy, du, dv), (sy, su, sv) = planes(dst), planes(src)
    h, w = sy.shape
    if x - border_px < 0 or y - border_px < 0:
        raise ValueError("the inset and its border must lie inside the picture")
    if y + h + border_px > dy.shape[0] or x + w + border_px > dy.shape[1]:
        raise ValueError("the inset and its border must lie inside the picture")
    if border_px:
        b = border_px
        dy[y - b : y + h + b, x - b : x + w + b] = border_luma
        half = b // 2
        cx, cy, cw, ch = x // 2, y // 2, w // 2, h // 2
        du[cy - half : cy + ch + half, cx - half : cx + cw + half] = 128
        dv[cy - half : cy + ch + half, cx - half : cx + cw + half] = 128
    dy[y : y + h, x : x + w] = sy
    du[y // 2 : y // 2 + h // 2, x // 2 : x // 2 + w // 2] = su
    dv[y // 2 : y // 2 + h // 2, x // 2 : x // 2 + w // 2] = sv


class PipComposer:
    """Builds programme frames: ``main`` at the output size, ``inset`` in its corner."""

    def __init__(self, layout: PipLayout | None = None) -> None:
        self.layout = layout or PipLayout()
        self.frames = 0

    def compose(self, main: av.VideoFrame, inset: av.VideoFrame | None) -> av.VideoFrame:
        """The programme frame (yuv420p); it keeps ``main``'s pts and time base."""
        lay = self.layout
        out = yuv_array(main.reformat(width=lay.width, height=lay.height, format="yuv420p"))
        if inset is not None:
            x, y, w, h = lay.inset_box()
            small = yuv_array(inset.reformat(width=w, height=h, format="yuv420p"))
            paste(out, small, x, y, lay.border_px, lay.border_luma)
        frame = av.VideoFrame.from_ndarray(out, format="yuv420p")
        frame.pts = main.pts
        if main.time_base is not None:
            frame.time_base = main.time_base
        self.frames += 1
        return frame

    def compose_for(
        self,
        shot: Shot,
        sources: Mapping[str, av.VideoFrame],
        targets: Mapping[Shot, Target] = DEFAULT_TARGETS,
    ) -> av.VideoFrame | None:
        """The programme frame for ``shot`` from the latest frame of each source role.

        The main picture is ``targets[shot]``'s source, the inset :data:`INSET_FOR`'s.
        None if the main source has no frame; the inset is left out if its source has none.
        """
        main_role = targets[shot].source_role
        main = sources.get(main_role)
        if main is None:
            return None
        inset_role = INSET_FOR[shot]
        inset = sources.get(inset_role) if inset_role != main_role else None
        return self.compose(main, inset)
