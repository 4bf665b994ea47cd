"""Screen layouts (画面布局): which picture goes where on a display, as pure functions.

A layout is a list of tiles. Each tile is a picture rectangle plus a label band *below*
it: the top-left 64 rows of every picture carry the burned-in frame code
(``edge_agent.media.barcode``) that the tests and benchmarks read, so nothing is ever
drawn over them. ``auto`` picks by the classroom's role and the display's kind:

- receiving room (any display): ``teacher_and_content``, the lead teacher and the lead's
  courseware side by side;
- lead room, mid-screen (教师专用中屏): ``rooms_grid``, every receiving room, the one with
  the floor large;
- lead room, panel: ``local_content``, the local courseware full screen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge_agent.profile import Display
from edge_agent.room.grid import Rect, cells, spotlight
from protocols.messages import FloorState, JoinLesson, RoomLabel, Subscription

__all__ = ["Rect", "Tile", "fit", "layout_for", "plan", "resolve_layout"]

ROLE_NAMES = {
    "teacher": "教师",
    "student": "学生",
    "board": "板书",
    "wide": "全景",
    "content": "课件",
}
LEGACY = ("remote_full_local_corner", "side_by_side", "remote_only")


@dataclass(frozen=True)
class Tile:
    """One picture on a display: where it goes, which feed fills it and its label."""

    rect: Rect  # the picture (16:9 unless the source says otherwise)
    source_key: str  # "<source_classroom>-<track>" for a remote feed, "local:<device>"
    label: str  # school and classroom (and the device's role), in Chinese
    large: bool = False  # the room with the floor on the lead's mid-screen
    band: Rect | None = None  # where the label is drawn: just below the picture
    classroom_id: str = ""  # whose picture this is (for the loudest-room marker)
    source_size: tuple[int, int] = (0, 0)  # the feed's width and height, if announced


def fit(rect: Rect, width: int, height: int) -> Rect:
    """The largest ``width:height`` rectangle centred in ``rect`` (the letterboxed picture)."""
    if width <= 0 or height <= 0:
        return rect
    w = min(rect.w, rect.h * width // height) & ~1
    h = min(rect.h, w * height // width) & ~1
    return Rect(rect.x + (rect.w - w) // 2, rect.y + (rect.h - h) // 2, w, h)


def resolve_layout(display: Display, role: str | None) -> str:
    """The layout a display uses for a classroom in this role (``auto`` resolved)."""
    if display.layout != "auto":
        return display.layout
    if role == "lead":
        return "rooms_grid" if display.kind == "mid_screen" else "local_content"
    return "teacher_and_content"


def layout_for(
    display: Display, join: JoinLesson | None, local_devices: Mapping[str, str]
) -> list[Tile]:
    """The tiles for a display in a lesson (``None``: no lesson, an empty idle screen)."""
    if join is None:
        return []
    return plan(display, join.role, join.subscribe, join.rooms, join.floor, local_devices)


def plan(
    display: Display,
    role: str | None,
    subscribe: Sequence[Subscription],
    rooms: Sequence[RoomLabel],
    floor: FloorState | None,
    local_devices: Mapping[str, str],
) -> list[Tile]:
    """The tiles for a display, from the lesson's role, subscriptions, labels and floor."""
    if role is None:
        return []
    names = _Names(rooms, floor)
    videos = [s for s in subscribe if s.kind == "video"]
    screen = Rect(0, 0, display.width, display.height)
    band = max(24, display.height // 24) & ~1
    layout = resolve_layout(display, role)
    if layout == "rooms_grid":
        return _rooms_grid(screen, band, videos, names, floor)
    if layout == "local_content":
        local = display.local or _first(local_devices, "content")
        return [_local_tile(fit(_less_band(screen, band), 16, 9), band, local)] if local else []
    teacher = _pick(videos, "teacher")
    if layout in ("teacher_and_content", "content_with_teacher_inset"):
        content = _pick(videos, "content", fallback=False)
        return _teacher_and_content(screen, band, layout, teacher, content, names)
    if layout not in LEGACY:
        raise ValueError(f"display {display.name!r}: unknown layout {layout!r}")
    return _legacy(screen, band, layout, teacher, display.local, names)


class _Names:
    """Labels by classroom (school and room name), with the floor's state appended."""

    def __init__(self, rooms: Sequence[RoomLabel], floor: FloorState | None) -> None:
        self.rooms = {r.classroom_id: r for r in rooms}
        self.floor = floor

    def label(self, classroom_id: str, role: str = "") -> str:
        room = self.rooms.get(classroom_id)
        text = " ".join(p for p in (room.school, room.name) if p) if room else ""
        parts = [text or classroom_id]
        if role in ROLE_NAMES:
            parts.append(ROLE_NAMES[role])
        if self.floor is not None:
            if self.floor.speaking == classroom_id:
                parts.append("发言中")
            if classroom_id in self.floor.muted:
                parts.append("已静音")
        return " · ".join(parts)


def _tile(pic: Rect, band: int, sub: Subscription, names: _Names, large: bool = False) -> Tile:
    label = names.label(sub.source_classroom, sub.role)
    return Tile(
        rect=pic,
        source_key=f"{sub.source_classroom}-{sub.track}",
        label=label,
        large=large,
        band=Rect(pic.x, pic.y + pic.h, pic.w, band),
        classroom_id=sub.source_classroom,
        source_size=(sub.width, sub.height),
    )


def _local_tile(pic: Rect, band: int, device: str) -> Tile:
    return Tile(
        rect=pic,
        source_key=f"local:{device}",
        label=f"本教室 · {device}",
        band=Rect(pic.x, pic.y + pic.h, pic.w, band),
    )


def _less_band(area: Rect, band: int) -> Rect:
    return Rect(area.x, area.y, area.w, area.h - band)


def _inset(big: Rect, band: int) -> Rect:
    """A quarter-width picture in the bottom-right corner of ``big``, its band inside too."""
    w = (big.w // 4) & ~1
    h = (w * 9 // 16) & ~1
    margin = max(8, big.w // 80)
    return Rect(big.x + big.w - w - margin, big.y + big.h - h - band - margin, w, h)


def _first(local_devices: Mapping[str, str], role: str) -> str:
    return next((name for name, r in local_devices.items() if r == role), "")


def _pick(videos: Sequence[Subscription], role: str, fallback: bool = True) -> Subscription | None:
    """The first remote video with this role, else (with ``fallback``) the first one."""
    for sub in videos:
        if sub.role == role:
            return sub
    others = [s for s in videos if s.role != "content"]
    return (others[0] if others else None) if fallback else None


def _teacher_and_content(
    screen: Rect,
    band: int,
    layout: str,
    teacher: Subscription | None,
    content: Subscription | None,
    names: _Names,
) -> list[Tile]:
    subs = [s for s in (teacher, content) if s is not None]
    if layout == "content_with_teacher_inset" and teacher is not None and content is not None:
        big = fit(_less_band(screen, band), 16, 9)
        inset = _inset(big, band)
        return [_tile(big, band, content, names), _tile(inset, band, teacher, names)]
    return [
        _tile(pic, band, sub, names)
        for sub, pic in zip(subs, cells(screen, len(subs), band), strict=True)
    ]


def _legacy(
    screen: Rect,
    band: int,
    layout: str,
    remote: Subscription | None,
    local: str,
    names: _Names,
) -> list[Tile]:
    tiles: list[Tile] = []
    if layout == "side_by_side":
        pics = cells(screen, 2, band)
        if remote is not None:
            tiles.append(_tile(pics[0], band, remote, names))
        if local:
            tiles.append(_local_tile(pics[1], band, local))
        return tiles
    if remote is not None:
        tiles.append(_tile(fit(_less_band(screen, band), 16, 9), band, remote, names))
    if layout == "remote_full_local_corner" and local:
        corner = _inset(fit(_less_band(screen, band), 16, 9), band)
        tiles.append(_local_tile(corner, band, local))
    return tiles


def _rooms_grid(
    screen: Rect,
    band: int,
    videos: Sequence[Subscription],
    names: _Names,
    floor: FloorState | None,
) -> list[Tile]:
    """Every receiving room's picture (a student camera if it has one), floor room large."""
    by_room: dict[str, Subscription] = {}
    for sub in videos:
        have = by_room.get(sub.source_classroom)
        if have is None or (sub.role == "student" and have.role != "student"):
            by_room[sub.source_classroom] = sub
    rooms = list(by_room.values())
    speaking = floor.speaking if floor is not None else None
    big = next((i for i, s in enumerate(rooms) if s.source_classroom == speaking), None)
    if big is None or len(rooms) == 1:
        pics = cells(screen, len(rooms), band)
        return [
            _tile(p, band, s, names, large=s.source_classroom == speaking)
            for s, p in zip(rooms, pics, strict=True)
        ]
    order = [rooms[big], *rooms[:big], *rooms[big + 1 :]]
    large, small = spotlight(screen, len(rooms) - 1, band)
    tiles = [_tile(large, band, order[0], names, large=True)]
    tiles += [_tile(p, band, s, names) for s, p in zip(order[1:], small, strict=True)]
    return tiles
