"""Room layouts as pure functions: which feed goes where, labels below the pictures."""

from __future__ import annotations

import pytest

from edge_agent.media import barcode
from edge_agent.profile import Display
from edge_agent.room.grid import Rect
from edge_agent.room.layouts import Tile, layout_for, plan, resolve_layout
from protocols.messages import FloorState, JoinLesson, RoomLabel, Subscription

PANEL = Display(name="panel", kind="panel", width=1280, height=720)
MID = Display(name="mid", kind="mid_screen", width=1280, height=720)
ROOMS = [
    RoomLabel(classroom_id="city-1", school="城关小学", name="三(2)班"),
    RoomLabel(classroom_id="vil-1", school="石门村小", name="一班"),
]


def video(room: str, track: str, role: str, w: int = 1280, h: int = 720) -> Subscription:
    return Subscription(
        source_classroom=room, track=track, kind="video", width=w, height=h, fps=30, role=role
    )


def receiver_subs() -> list[Subscription]:
    return [
        Subscription(source_classroom="city-1", track="mic", kind="audio", role="room"),
        video("city-1", "wide", "wide"),
        video("city-1", "teacher", "teacher"),
        video("city-1", "panel", "content"),
    ]


def check_geometry(display: Display, tiles: list[Tile]) -> None:
    """Every picture and band on screen, bands right below pictures, no overlap of codes."""
    screen = Rect(0, 0, display.width, display.height)
    for t in tiles:
        assert t.band is not None and screen.contains(t.rect) and screen.contains(t.band)
        assert t.band.y == t.rect.y + t.rect.h, "the label band sits below the picture"
        code = Rect(t.rect.x, t.rect.y, min(t.rect.w, 512), min(t.rect.h, 64))
        for other in tiles:
            if other is not t and other.band is not None:
                assert not other.band.overlaps(code), f"{other.label} hides {t.label}'s code"


def test_receiving_panel_shows_lead_teacher_and_courseware_side_by_side() -> None:
    tiles = plan(PANEL, "receiver", receiver_subs(), ROOMS, None, {})
    assert [t.source_key for t in tiles] == ["city-1-teacher", "city-1-panel"]
    left, right = tiles
    assert left.rect.x + left.rect.w <= right.rect.x and left.rect.w == right.rect.w
    assert abs(left.rect.w * 9 - left.rect.h * 16) <= 32  # 16:9
    assert left.label == "城关小学 三(2)班 · 教师" and right.label == "城关小学 三(2)班 · 课件"
    assert left.source_size == (1280, 720) and left.classroom_id == "city-1"
    check_geometry(PANEL, tiles)


def test_content_with_teacher_inset_keeps_the_courseware_large() -> None:
    display = PANEL.model_copy(update={"layout": "content_with_teacher_inset"})
    content, teacher = plan(display, "receiver", receiver_subs(), ROOMS, None, {})
    assert content.source_key == "city-1-panel" and teacher.source_key == "city-1-teacher"
    assert content.rect.contains(teacher.rect) and teacher.rect.w == content.rect.w // 4 & ~1
    check_geometry(display, [content, teacher])


def test_labels_fall_back_to_the_classroom_id() -> None:
    (tile,) = plan(PANEL, "receiver", [video("x-9", "teacher", "teacher")], [], None, {})
    assert tile.label == "x-9 · 教师"


def lead_subs(n: int) -> list[Subscription]:
    subs = []
    for i in range(n):
        subs.append(video(f"v{i}", "wide", "wide", 640, 360))
        subs.append(video(f"v{i}", "students", "student", 640, 360))
    return subs


def test_auto_picks_by_role_and_display_kind() -> None:
    assert resolve_layout(PANEL, "receiver") == "teacher_and_content"
    assert resolve_layout(MID, "receiver") == "teacher_and_content"
    assert resolve_layout(MID, "lead") == "rooms_grid"
    assert resolve_layout(PANEL, "lead") == "local_content"
    assert layout_for(PANEL, None, {}) == []


@pytest.mark.parametrize("n", range(1, 10))
def test_rooms_grid_prefers_student_cameras_and_holds_up_to_nine(n: int) -> None:
    tiles = plan(MID, "lead", lead_subs(n), ROOMS, None, {})
    assert [t.source_key for t in tiles] == [f"v{i}-students" for i in range(n)]
    assert not any(t.large for t in tiles)
    check_geometry(MID, tiles)
    # big enough to read the code back from a 640-wide source
    assert min(t.rect.w for t in tiles) >= 256


@pytest.mark.parametrize("n", range(2, 10))
def test_the_room_with_the_floor_is_large(n: int) -> None:
    floor = FloorState(lesson_id="L", seq=1, speaking=f"v{n - 1}", muted=["v0"])
    tiles = plan(MID, "lead", lead_subs(n), ROOMS, floor, {})
    assert tiles[0].source_key == f"v{n - 1}-students" and tiles[0].large
    assert tiles[0].rect.w > 1.5 * max(t.rect.w for t in tiles[1:])
    assert "发言中" in tiles[0].label and "已静音" in next(
        t.label for t in tiles if t.classroom_id == "v0"
    )
    assert len({t.source_key for t in tiles}) == n
    check_geometry(MID, tiles)
    for a in tiles:
        for b in tiles:
            if a is not b:
                assert not a.rect.overlaps(b.rect)


def test_lead_panel_shows_the_local_courseware() -> None:
    (tile,) = plan(PANEL, "lead", lead_subs(2), [], None, {"cam": "teacher", "pc": "content"})
    assert tile.source_key == "local:pc" and tile.rect.h > 600
    named = PANEL.model_copy(update={"local": "cam"})
    assert plan(named, "lead", [], [], None, {"pc": "content"})[0].source_key == "local:cam"
    assert plan(PANEL, "lead", [], [], None, {"cam": "teacher"}) == []


def test_legacy_layouts_show_the_remote_teacher() -> None:
    subs = [video("c", "wide", "wide"), video("c", "teacher", "teacher")]
    corner = PANEL.model_copy(update={"layout": "remote_full_local_corner", "local": "cam"})
    remote, local = plan(corner, "receiver", subs, [], None, {})
    assert remote.source_key == "c-teacher" and local.source_key == "local:cam"
    assert remote.rect.contains(local.rect)
    side = PANEL.model_copy(update={"layout": "side_by_side", "local": "cam"})
    a, b = plan(side, "receiver", subs, [], None, {})
    assert a.rect.x + a.rect.w <= b.rect.x
    only = PANEL.model_copy(update={"layout": "remote_only"})
    (t,) = plan(only, "receiver", [video("c", "wide", "wide")], [], None, {})
    assert t.source_key == "c-wide"  # no teacher: the first remote video


def test_a_join_is_planned_with_its_rooms_and_floor() -> None:
    join = JoinLesson(
        lesson_id="L",
        role="lead",
        publish=[],
        subscribe=lead_subs(3),
        start_at=0,
        end_at=1,
        rooms=ROOMS,
        floor=FloorState(lesson_id="L", seq=1, speaking="v1"),
    )
    tiles = layout_for(MID, join, {})
    assert tiles[0].classroom_id == "v1" and tiles[0].large
    assert barcode.HEIGHT <= 64
