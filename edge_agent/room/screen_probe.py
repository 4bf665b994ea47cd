"""Read back what the room's screens show: grab the X screen, decode each tile's code.

For tests and benchmarks (glass-to-glass on the screen): every synthetic and test frame
carries the burned-in counter and capture time (``edge_agent.media.barcode``) in its
top-left corner, which the layouts keep clear of labels. A tile's picture is cropped from
the screenshot, scaled back to its source's size and decoded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import av
import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.media import barcode
from edge_agent.profile import Display
from edge_agent.room.layouts import Tile, fit
from edge_agent.room.screens import RoomScreens

Code = tuple[int, int]  # (counter, capture_ms)
DEFAULT_SOURCE = (1280, 720)


def grab(x_display: str, width: int, height: int) -> npt.NDArray[np.uint8]:
    """A screenshot (height x width x RGB) of the X display's top-left, by FFmpeg's x11grab."""
    try:
        with av.open(x_display, format="x11grab", options={"video_size": f"{width}x{height}"}) as c:
            frame = next(c.decode(video=0))
    except (av.FFmpegError, StopIteration) as err:
        raise RuntimeError(
            f"cannot grab {width}x{height} from X display {x_display} ({err}); check the "
            "display is running and at least that large"
        ) from err
    return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)


def read_tile(
    shot: npt.NDArray[np.uint8], display: Display, tile: Tile, source: tuple[int, int]
) -> Code | None:
    """The code in one tile of a screenshot, for a source of this (width, height)."""
    w, h = source
    pic = fit(tile.rect, w, h)
    x, y = display.x + pic.x, display.y + pic.y
    crop = shot[y : y + pic.h, x : x + pic.w]
    if crop.shape[0] < 8 or crop.shape[1] < 8:
        return None
    rgb = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return barcode.read(luma)


def read_tiles(
    shot: npt.NDArray[np.uint8],
    display: Display,
    tiles: Sequence[Tile],
    sizes: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, Code | None]:
    """Each tile's decoded code (None where none reads), by source key."""
    out: dict[str, Code | None] = {}
    for tile in tiles:
        size = (sizes or {}).get(tile.source_key) or tile.source_size
        out[tile.source_key] = read_tile(shot, display, tile, size if all(size) else DEFAULT_SOURCE)
    return out


def probe(screens: RoomScreens) -> dict[str, dict[str, Code | None]]:
    """Grab the screen once and decode every tile of every display: display → key → code."""
    width = max(d.x + d.width for d in screens.displays)
    height = max(d.y + d.height for d in screens.displays)
    shot = grab(screens.displays[0].display, width, height)
    sizes = screens.source_sizes()
    return {d.name: read_tiles(shot, d, screens.tiles(d.name), sizes) for d in screens.displays}
