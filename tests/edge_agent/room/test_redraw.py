"""Only what changed is drawn: the screens on a real X server (Xvfb) never show a stale
tile, a lost label or a frozen picture where a slate belongs."""

from __future__ import annotations

import shutil
import time

import numpy as np
from helpers import needs

from edge_agent.profile import Display
from edge_agent.room.screen_probe import grab, probe
from edge_agent.room.screens import RoomScreens
from edge_agent.room.window import BAND, SLATE
from protocols.messages import FloorState

from .conftest import Feed
from .test_screens import feed_until, join, run_feeds, video

pytestmark = needs(shutil.which("Xvfb") is not None, "Xvfb not installed (apt-get install xvfb)")


def codes(screens: RoomScreens, display: str) -> dict[str, tuple[int, int] | None]:
    return probe(screens)[display]


def counter(screens: RoomScreens, display: str, key: str) -> int | None:
    code = codes(screens, display)[key]
    return code[0] if code else None


def label_drawn(shot: np.ndarray, screens: RoomScreens, display: str) -> bool:
    for tile in screens.tiles(display):
        assert tile.band is not None
        band = shot[
            tile.band.y : tile.band.y + tile.band.h, tile.band.x : tile.band.x + tile.band.w
        ]
        text = np.any(np.abs(band.astype(int) - np.array(BAND)) > 60, axis=2)
        if text.sum() <= 100:
            return False
    return True


def test_a_tile_whose_feed_moves_on_shows_the_new_frame_and_the_other_keeps_its_own(
    xdisplay: str,
) -> None:
    panel = Display(name="panel", display=xdisplay, width=1280, height=720)
    screens = RoomScreens([panel], "v0")
    screens.start()
    try:
        subs = [
            video("city", "teacher", "teacher", 1280, 720),
            video("city", "pc", "content", 1280, 720),
        ]
        screens.lesson(join("receiver", subs), {})
        teacher, content = Feed("city-teacher", 1280, 720, "T"), Feed("city-pc", 1280, 720, "C")
        content.counter = 5000  # the two feeds' codes cannot be mistaken for each other
        feed_until(screens, [teacher, content], lambda: all(codes(screens, "panel").values()))
        held, moved = content.counter, teacher.counter
        # Only the teacher's feed moves on (for less than the slate's second).
        run_feeds(screens, [teacher], 0.3)
        seen = codes(screens, "panel")
        shot = grab(xdisplay, 1280, 720)
    finally:
        screens.stop()
    assert seen["city-teacher"] is not None and seen["city-teacher"][0] > moved + 3, seen
    # the still tile keeps its last picture: not redrawn from another tile, not blanked
    assert seen["city-pc"] is not None and held - 3 <= seen["city-pc"][0] <= held, seen
    assert label_drawn(shot, screens, "panel"), "a partial redraw lost a label band"


def test_a_stalled_feed_becomes_the_slate_while_its_neighbour_goes_on_drawing(
    xdisplay: str,
) -> None:
    panel = Display(name="panel", display=xdisplay, width=1280, height=720)
    screens = RoomScreens([panel], "v0")
    screens.start()
    try:
        subs = [
            video("city", "teacher", "teacher", 1280, 720),
            video("city", "pc", "content", 1280, 720),
        ]
        screens.lesson(join("receiver", subs), {})
        teacher, content = Feed("city-teacher", 1280, 720, "T"), Feed("city-pc", 1280, 720, "C")
        feed_until(screens, [teacher, content], lambda: all(codes(screens, "panel").values()))
        # The teacher's feed stalls: nothing else changes but the clock, then the slate.
        feed_until(screens, [content], lambda: codes(screens, "panel")["city-teacher"] is None)
        run_feeds(screens, [content], 0.5)  # the neighbour's redraws must not undo it
        tile = next(t for t in screens.tiles("panel") if t.source_key == "city-teacher")
        shot = grab(xdisplay, 1280, 720)
        after = counter(screens, "panel", "city-pc")
    finally:
        screens.stop()
    centre = shot[tile.rect.y + tile.rect.h // 4, tile.rect.x + 10]
    assert tuple(int(c) for c in centre) == SLATE, "a frozen picture instead of the slate"
    assert after is not None and after >= content.counter - 15, "the live tile stopped"
    assert label_drawn(shot, screens, "panel")


def test_a_tile_given_another_feed_by_the_floor_shows_that_feed(xdisplay: str) -> None:
    mid = Display(name="mid", kind="mid_screen", display=xdisplay, width=1280, height=720)
    screens = RoomScreens([mid], "city")
    screens.start()
    try:
        subs = [video(f"v{i}", "students", "student", 640, 360) for i in range(3)]
        screens.lesson(join("lead", subs, speaking="v1"), {})
        feeds = [Feed(f"v{i}-students", 640, 360, f"V{i}") for i in range(3)]
        for i, feed in enumerate(feeds):
            feed.counter = 10_000 * (i + 1)  # each room's codes in a range of its own
        feed_until(screens, feeds, lambda: all(codes(screens, "mid").values()))
        big_before = max(screens.tiles("mid"), key=lambda t: t.rect.w).rect
        screens.set_floor(FloorState(lesson_id="L1", seq=2, speaking="v2"))
        feed_until(screens, feeds, lambda: all(codes(screens, "mid").values()))
        time.sleep(0.1)
        seen = codes(screens, "mid")
        big = max(screens.tiles("mid"), key=lambda t: t.rect.w)
    finally:
        screens.stop()
    assert big.source_key == "v2-students" and big.rect == big_before
    for key, code in seen.items():
        assert code is not None
        room = int(key[1])
        assert 10_000 * (room + 1) <= code[0] < 10_000 * (room + 2), (key, code)
