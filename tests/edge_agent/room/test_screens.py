"""The room screens on a real X server (Xvfb): what each tile actually shows."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, needs
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.profile import Display
from edge_agent.room.screen_probe import grab, probe
from edge_agent.room.screens import RoomScreens
from edge_agent.room.window import BAND
from protocols.messages import FloorState, JoinLesson, RoomLabel, Subscription

from .conftest import Feed, wait_for

pytestmark = needs(shutil.which("Xvfb") is not None, "Xvfb not installed (apt-get install xvfb)")


def video(room: str, track: str, role: str, w: int, h: int) -> Subscription:
    return Subscription(
        source_classroom=room, track=track, kind="video", width=w, height=h, fps=30, role=role
    )


def join(role: str, subs: list[Subscription], speaking: str | None = None) -> JoinLesson:
    rooms = [RoomLabel(classroom_id="city", school="城关小学", name="三(2)班")]
    rooms += [RoomLabel(classroom_id=f"v{i}", school=f"村小{i}", name="一班") for i in range(3)]
    return JoinLesson(
        lesson_id="L1",
        role=role,  # type: ignore[arg-type]
        publish=[],
        subscribe=subs,
        start_at=0,
        end_at=1,
        rooms=rooms,
        floor=FloorState(lesson_id="L1", seq=1, speaking=speaking) if speaking else None,
    )


def run_feeds(screens: RoomScreens, feeds: list[Feed], seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for feed in feeds:
            feed.push(screens)
        time.sleep(1 / 30)


def codes(screens: RoomScreens, display: str) -> dict[str, tuple[int, int] | None]:
    return probe(screens)[display]


def feed_until(
    screens: RoomScreens, feeds: list[Feed], done: Callable[[], bool], timeout: float = 8.0
) -> None:
    """Keep feeding until ``done()`` (a busy machine draws late: poll, do not sleep once)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        run_feeds(screens, feeds, 0.2)


def test_receiving_panel_shows_teacher_and_courseware_with_labels(xdisplay: str) -> None:
    panel = Display(name="panel", display=xdisplay, width=1280, height=720)
    screens = RoomScreens([panel], "v0")
    screens.start()
    try:
        screens.lesson(
            join(
                "receiver",
                [
                    video("city", "teacher", "teacher", 1280, 720),
                    video("city", "pc", "content", 1280, 720),
                ],
            ),
            {},
        )
        feeds = [Feed("city-teacher", 1280, 720, "T"), Feed("city-pc", 1280, 720, "C")]
        feed_until(screens, feeds, lambda: all(codes(screens, "panel").values()))
        run_feeds(screens, feeds, 0.3)
        seen = codes(screens, "panel")
        shot = grab(xdisplay, 1280, 720)
    finally:
        screens.stop()
    assert seen["city-teacher"] is not None and seen["city-pc"] is not None, seen
    assert seen["city-teacher"][0] > feeds[0].counter - 30  # a fresh frame, not a stale one
    for tile in screens.tiles("panel"):
        assert tile.band is not None
        band = shot[
            tile.band.y : tile.band.y + tile.band.h, tile.band.x : tile.band.x + tile.band.w
        ]
        text = np.any(np.abs(band.astype(int) - np.array(BAND[:3])) > 60, axis=2)
        assert text.sum() > 100, f"no label drawn for {tile.label}"
    stats = screens.stats()
    assert stats["drawn"]["panel"] > 5 and stats["shown"]["city-teacher"] > 5  # type: ignore[index]


def test_lead_mid_screen_makes_the_room_with_the_floor_large(xdisplay: str) -> None:
    mid = Display(name="mid", kind="mid_screen", display=xdisplay, width=1280, height=720)
    screens = RoomScreens([mid], "city")
    screens.start()
    try:
        subs = [video(f"v{i}", "students", "student", 640, 360) for i in range(3)]
        screens.lesson(join("lead", subs, speaking="v1"), {})
        feeds = [Feed(f"v{i}-students", 640, 360, f"V{i}") for i in range(3)]
        feed_until(screens, feeds, lambda: all(codes(screens, "mid").values()))
        big = max(screens.tiles("mid"), key=lambda t: t.rect.w)
        assert big.classroom_id == "v1" and big.large
        screens.set_floor(FloorState(lesson_id="L1", seq=2, speaking="v2"))
        big = max(screens.tiles("mid"), key=lambda t: t.rect.w)
        assert big.classroom_id == "v2"
        feed_until(screens, feeds, lambda: all(codes(screens, "mid").values()))
        screens.set_loudest("v0")
        run_feeds(screens, feeds, 0.3)
        feed_until(screens, feeds, lambda: all(codes(screens, "mid").values()))
    finally:
        screens.stop()


def test_a_stopped_feed_shows_the_reconnecting_slate_then_comes_back(xdisplay: str) -> None:
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
        feed_until(
            screens, [teacher, content], lambda: codes(screens, "panel")["city-teacher"] is not None
        )
        stopped = time.monotonic()
        run_feeds(screens, [content], 1.2)  # the teacher's feed stops
        feed_until(screens, [content], lambda: codes(screens, "panel")["city-teacher"] is None)
        assert time.monotonic() - stopped >= 1.0, "slate before the feed was 1 s silent"
        assert codes(screens, "panel")["city-pc"] is not None
        tile = next(t for t in screens.tiles("panel") if t.source_key == "city-teacher")
        shot = grab(xdisplay, 1280, 720)
        centre = shot[tile.rect.y + tile.rect.h // 4, tile.rect.x + 10]
        assert tuple(int(c) for c in centre) == (52, 56, 66), "no slate"
        assert screens.stats()["slates"]["city-teacher"] == 1  # type: ignore[index]
        feed_until(
            screens, [teacher, content], lambda: codes(screens, "panel")["city-teacher"] is not None
        )
    finally:
        screens.stop()


def test_two_displays_side_by_side_on_one_x_screen(xdisplay: str) -> None:
    panel = Display(name="panel", display=xdisplay, width=1280, height=720)
    mid = Display(name="mid", kind="mid_screen", display=xdisplay, x=1280, width=1280, height=720)
    screens = RoomScreens([panel, mid], "city")
    screens.start()
    try:
        subs = [video(f"v{i}", "students", "student", 640, 360) for i in range(2)]
        screens.lesson(join("lead", subs), {"cam": "teacher", "pc": "content"})
        feeds = [Feed("local:pc", 1280, 720, "PC")]
        feeds += [Feed(f"v{i}-students", 640, 360, f"V{i}") for i in range(2)]
        feed_until(
            screens,
            feeds,
            lambda: all(v for shown in probe(screens).values() for v in shown.values()),
        )
        seen = probe(screens)
    finally:
        screens.stop()
    assert seen["panel"] == {"local:pc": seen["panel"]["local:pc"]} and seen["panel"]["local:pc"]
    assert set(seen["mid"]) == {"v0-students", "v1-students"} and all(seen["mid"].values()), seen


def test_no_lesson_shows_the_idle_screen(xdisplay: str) -> None:
    panel = Display(name="panel", display=xdisplay, width=1280, height=720)
    screens = RoomScreens([panel], "v0")
    screens.start()
    try:
        time.sleep(0.3)
        shot = grab(xdisplay, 1280, 720)
    finally:
        screens.stop()
    assert screens.tiles("panel") == []
    assert np.count_nonzero(shot[200:520].max(axis=2) > 150) > 500, "no idle text"


@needs(shutil.which("xdotool") is not None, "xdotool not installed (apt-get install xdotool)")
def test_a_clicker_key_reaches_the_callback(xdisplay: str) -> None:
    keys: list[str] = []
    panel = Display(name="panel", display=xdisplay, width=1280, height=720)
    screens = RoomScreens([panel], "v0", on_key=keys.append)
    screens.start()
    try:
        time.sleep(0.2)
        subprocess.run(
            ["xdotool", "key", "Next"], env={"DISPLAY": xdisplay}, check=True, timeout=10
        )
        wait_for(lambda: keys)
    finally:
        screens.stop()
    assert keys == ["page down"]


def test_a_missing_display_is_a_clear_error() -> None:
    alerts: list[str | None] = []
    screens = RoomScreens(
        [Display(display=":63", width=640, height=360)], "v0", on_alert=alerts.append
    )
    with pytest.raises(RuntimeError, match="X display :63"):
        screens.start()
    assert alerts and alerts[-1] is not None and ":63" in alerts[-1]


def test_the_technicians_screen_test_opens_both_displays(xdisplay: str, tmp_path: Path) -> None:
    profile = tmp_path / "profile.toml"
    profile.write_text(
        (REPO / "hardware_profiles" / "synthetic.toml").read_text()
        + f'\n[[displays]]\nname = "panel"\ndisplay = "{xdisplay}"\nwidth = 1280\nheight = 720\n'
        + f'\n[[displays]]\nname = "mid"\nkind = "mid_screen"\ndisplay = "{xdisplay}"\n'
        + "x = 1280\nwidth = 1280\nheight = 720\n"
    )
    result = CliRunner().invoke(
        app, ["test", "panel", "--profile", str(profile), "--seconds", "0.5"]
    )
    assert result.exit_code == 0 and "OK screens" in result.output, result.output


def test_a_feed_no_tile_shows_is_not_kept(xdisplay: str) -> None:
    """A track received only for the recording neither is kept nor wakes the drawing."""
    panel = Display(name="panel", display=xdisplay, width=1280, height=720)
    screens = RoomScreens([panel], "v0")
    screens.start()
    try:
        screens.lesson(join("receiver", [video("city", "teacher", "teacher", 1280, 720)]), {})
        shown, hidden = Feed("city-teacher", 1280, 720, "T"), Feed("city-wide", 640, 360, "W")
        feed_until(screens, [shown, hidden], lambda: all(codes(screens, "panel").values()))
        sizes = screens.source_sizes()
    finally:
        screens.stop()
    assert set(sizes) == {"city-teacher"}, sizes
