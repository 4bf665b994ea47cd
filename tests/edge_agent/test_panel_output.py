"""The panel output window on a real X display (Xvfb): layouts and what actually shows."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import av
import numpy as np
import pytest
from helpers import needs

from edge_agent.panel_output import PanelWindow, layout_rects
from edge_agent.profile import PanelOutput

pytestmark = needs(shutil.which("Xvfb") is not None, "Xvfb not installed (apt-get install xvfb)")


def test_layouts_place_local_in_the_corner_or_beside() -> None:
    corner = layout_rects("remote_full_local_corner", 1920, 1080)
    assert corner["remote"].w == 1920 and corner["remote"].h == 1080
    local = corner["local"]
    assert local.x + local.w <= 1920 and local.y + local.h <= 1080 and local.w == 480
    side = layout_rects("side_by_side", 1920, 1080)
    assert side["remote"].x + side["remote"].w == side["local"].x
    assert set(layout_rects("remote_only", 1280, 720)) == {"remote"}
    with pytest.raises(ValueError, match="unknown panel layout 'pip'"):
        layout_rects("pip", 1920, 1080)


@pytest.fixture
def display() -> Iterator[str]:
    number = 97
    proc = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not __import__("os").path.exists(f"/tmp/.X11-unix/X{number}"):
        assert time.monotonic() < deadline, "Xvfb did not start"
        time.sleep(0.05)
    yield f":{number}"
    proc.terminate()
    proc.wait(5)


def solid(rgb: tuple[int, int, int]) -> av.VideoFrame:
    img = np.zeros((360, 640, 3), dtype=np.uint8)
    img[:] = rgb
    return av.VideoFrame.from_ndarray(img, format="rgb24")


def grab(display: str) -> np.ndarray:
    """A screenshot of the display, taken by FFmpeg's X11 grabber."""
    with av.open(display, format="x11grab", options={"video_size": "1280x720"}) as c:
        frame = next(c.decode(video=0))
        return np.asarray(frame.to_ndarray(format="rgb24"))


def test_window_shows_remote_full_screen_and_local_in_corner(display: str) -> None:
    output = PanelOutput(display=display, width=1280, height=720, fullscreen=True)
    window = PanelWindow(output)
    window.start()
    try:
        window.show("remote", solid((200, 30, 30)))
        window.show("local", solid((30, 30, 200)))
        deadline = time.monotonic() + 5
        while window.shown["local"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        shot = grab(display)
    finally:
        window.stop()
    local = layout_rects("remote_full_local_corner", 1280, 720)["local"]
    centre = shot[360, 400]
    corner = shot[local.y + local.h // 2, local.x + local.w // 2]
    assert centre[0] > 150 and centre[2] < 80, f"remote picture not full-screen: {centre}"
    assert corner[2] > 150 and corner[0] < 80, f"local picture not in the corner: {corner}"


def test_a_missing_display_is_a_clear_error() -> None:
    window = PanelWindow(PanelOutput(display=":63", width=640, height=360, fullscreen=False))
    with pytest.raises(RuntimeError, match="cannot open the panel window on display :63"):
        window.start()
