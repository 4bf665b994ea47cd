"""The room's sections of a hardware profile: speakers, displays and floor keys."""

from __future__ import annotations

import pathlib
import re

import pytest

from edge_agent.errors import ProfileError
from edge_agent.profile import load_profile

BASE = """
name = "room"
[[devices]]
name = "teacher"
kind = "camera"
role = "teacher"
driver = "synthetic"
width = 640
height = 360
fps = 15
bitrate = 500_000
"""


def load(tmp_path: pathlib.Path, extra: str) -> object:
    path = tmp_path / "room.toml"
    path.write_text(BASE + extra)
    return load_profile(path).profile


def test_speakers_displays_and_keys_are_read(tmp_path: pathlib.Path) -> None:
    profile = load(
        tmp_path,
        """
[speakers]
device = "room_spk"
[[displays]]
name = "panel"
[[displays]]
name = "mid"
kind = "mid_screen"
x = 1920
[floor_keys]
next = "f5"
""",
    )
    screens = profile.screens  # type: ignore[attr-defined]
    assert [(d.name, d.kind, d.frame_rate) for d in screens] == [
        ("panel", "panel", 30),
        ("mid", "mid_screen", 15),
    ]
    assert profile.speakers.device == "room_spk"  # type: ignore[attr-defined]
    assert profile.floor_keys.next == "f5"  # type: ignore[attr-defined]


def test_an_older_output_section_is_one_panel_display(tmp_path: pathlib.Path) -> None:
    profile = load(tmp_path, '[output]\ndisplay = ":1"\nlayout = "side_by_side"\n')
    (panel,) = profile.screens  # type: ignore[attr-defined]
    assert (panel.kind, panel.display, panel.layout) == ("panel", ":1", "side_by_side")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[speakers]\ndriver = "alsa"\n', "alsa speakers need device"),
        ("[speakers]\nlatency_ms = 5\n", "latency_ms"),
        ('[output]\n[[displays]]\nname = "panel"\n', "either as [output]"),
        ('[[displays]]\nname = "a"\n[[displays]]\nname = "b"\n', "at most one panel"),
        (
            '[[displays]]\nname = "a"\n[[displays]]\nname = "b"\nkind = "mid_screen"\n'
            'display = ":1"\n',
            "same X display",
        ),
        ('[[displays]]\nname = "a"\nlocal = "nope"\n', "is not a device of this profile"),
        ('[[displays]]\nname = "a"\nlayout = "mosaic"\n', "layout"),
    ],
)
def test_bad_room_sections_name_the_field_and_the_fix(
    tmp_path: pathlib.Path, extra: str, message: str
) -> None:
    with pytest.raises(ProfileError, match=re.escape(message)):
        load(tmp_path, extra)
