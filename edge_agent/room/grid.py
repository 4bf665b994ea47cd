"""Grid geometry for the layouts: 16:9 pictures with a label band below each, in cells."""

from __future__ import annotations

import math
from dataclasses import dataclass

GAP = 12  # between cells: room for the loudest-room border outside each picture
ASPECT_W, ASPECT_H = 16, 9


@dataclass(frozen=True)
class Rect:
    """A place on a display, in pixels from its top-left corner."""

    x: int
    y: int
    w: int
    h: int

    def contains(self, other: Rect) -> bool:
        """Whether ``other`` lies entirely inside this rectangle."""
        return (
            self.x <= other.x
            and self.y <= other.y
            and other.x + other.w <= self.x + self.w
            and other.y + other.h <= self.y + self.h
        )

    def overlaps(self, other: Rect) -> bool:
        """Whether the two rectangles share any pixel."""
        return (
            self.x < other.x + other.w
            and other.x < self.x + self.w
            and self.y < other.y + other.h
            and other.y < self.y + self.h
        )


def picture_in(cell: Rect, band: int, gap: int = GAP) -> Rect:
    """The 16:9 picture centred in a cell, leaving a gap around and a band below it."""
    room_w = max(2, cell.w - gap)
    room_h = max(2, cell.h - gap - band)
    w = min(room_w, room_h * ASPECT_W // ASPECT_H) & ~1
    h = (w * ASPECT_H // ASPECT_W) & ~1
    x = cell.x + (cell.w - w) // 2
    y = cell.y + (cell.h - h - band) // 2
    return Rect(x, y, w, h)


def split(area: Rect, cols: int, rows: int) -> list[Rect]:
    """The area cut into ``cols`` x ``rows`` equal cells, row by row."""
    out = []
    for r in range(rows):
        for c in range(cols):
            x0, x1 = area.x + area.w * c // cols, area.x + area.w * (c + 1) // cols
            y0, y1 = area.y + area.h * r // rows, area.y + area.h * (r + 1) // rows
            out.append(Rect(x0, y0, x1 - x0, y1 - y0))
    return out


def cells(area: Rect, n: int, band: int) -> list[Rect]:
    """``n`` equal pictures in the area, in the column count that makes them largest."""
    if n <= 0:
        return []
    best: tuple[int, int, int] = (0, 1, n)
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        width = picture_in(split(area, cols, rows)[0], band).w
        if width > best[0]:
            best = (width, cols, rows)
    _, cols, rows = best
    slots = split(area, cols, rows)
    pics = [picture_in(cell, band) for cell in slots[:n]]
    last_row = n - (rows - 1) * cols
    if last_row < cols:  # centre a short last row
        shift = (cols - last_row) * (area.w // cols) // 2
        pics[-last_row:] = [Rect(p.x + shift, p.y, p.w, p.h) for p in pics[-last_row:]]
    return pics


def spotlight(area: Rect, smalls: int, band: int) -> tuple[Rect, list[Rect]]:
    """One large picture and ``smalls`` small ones beside it (right column, then below).

    Up to three small pictures sit in a column on the right third. More use a k x k grid
    whose top-left (k-1) x (k-1) cells hold the large picture and whose right column and
    bottom row hold the small ones (k = 3 holds 5, k = 4 holds 7, k = 5 holds 9).
    """
    if smalls <= 3:
        split_x = area.w * 2 // 3
        large = picture_in(Rect(area.x, area.y, split_x, area.h), band)
        column = Rect(area.x + split_x, area.y, area.w - split_x, area.h)
        return large, [picture_in(c, band) for c in split(column, 1, max(smalls, 2))][:smalls]
    k = 3
    while 2 * k - 1 < smalls:
        k += 1
    grid = split(area, k, k)
    top_left, bottom_right = grid[0], grid[(k - 2) * k + (k - 2)]
    big_cell = Rect(
        top_left.x,
        top_left.y,
        bottom_right.x + bottom_right.w - top_left.x,
        bottom_right.y + bottom_right.h - top_left.y,
    )
    edge = [grid[r * k + k - 1] for r in range(k)] + [
        grid[(k - 1) * k + c] for c in range(k - 2, -1, -1)
    ]
    return picture_in(big_cell, band), [picture_in(c, band) for c in edge[:smalls]]
