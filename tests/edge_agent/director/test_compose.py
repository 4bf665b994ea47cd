"""Movie mode: the programme picture at the output size with the inset in its corner."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from edge_agent.director.compose import (
    INSET_FOR,
    PipComposer,
    PipLayout,
    paste,
    planes,
    yuv_array,
)
from edge_agent.director.rules import SHOTS, Shot


def flat(width: int, height: int, y: int, u: int, v: int) -> av.VideoFrame:
    """A yuv420p frame of one colour."""
    buf = np.empty((height * 3 // 2, width), dtype=np.uint8)
    buf[:height] = y
    buf[height : height + height // 4] = u
    buf[height + height // 4 :] = v
    return av.VideoFrame.from_ndarray(buf, format="yuv420p")


def test_inset_box_is_a_quarter_in_the_chosen_corner() -> None:
    lay = PipLayout()
    x, y, w, h = lay.inset_box()
    assert (w, h) == (320, 180)
    assert x + w == 1280 - 32 - 2 and y + h == 720 - 32 - 2  # margin 2.5 % + border
    assert PipLayout(corner="top_left").inset_box()[:2] == (34, 34)
    with pytest.raises(ValueError, match="even"):
        PipLayout(width=1279)
    with pytest.raises(ValueError, match="inset"):
        PipLayout(inset=0.9)


def test_programme_frame_has_the_output_size_and_the_inset_pixels() -> None:
    main = flat(1920, 1080, 60, 90, 160)  # a 1080p camera …
    main.pts, main.time_base = 4500, fractions.Fraction(1, 90000)
    inset = flat(640, 360, 200, 170, 40)  # … and a smaller one
    out = PipComposer().compose(main, inset)
    assert (out.width, out.height, out.format.name) == (1280, 720, "yuv420p")
    assert out.pts == 4500 and out.time_base == fractions.Fraction(1, 90000)
    yp, up, vp = planes(yuv_array(out))
    x, y, w, h = PipLayout().inset_box()
    assert (yp[y : y + h, x : x + w] == 200).all()
    assert (up[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] == 170).all()
    assert (vp[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] == 40).all()
    assert (yp[y - 2 : y, x : x + w] == 235).all()  # the border
    outside = np.ones_like(yp, dtype=bool)
    outside[y - 2 : y + h + 2, x - 2 : x + w + 2] = False
    assert (yp[outside] == 60).all()  # the main picture everywhere else
    assert (up[: y // 2 - 1] == 90).all() and (vp[: y // 2 - 1] == 160).all()


def test_no_inset_is_just_the_scaled_main_picture() -> None:
    out = PipComposer(PipLayout(width=640, height=360)).compose(flat(1280, 720, 80, 128, 128), None)
    assert (out.width, out.height) == (640, 360)
    assert (planes(yuv_array(out))[0] == 80).all()


def test_compose_for_picks_main_and_inset_by_shot() -> None:
    sources = {
        "teacher": flat(1280, 720, 40, 128, 128),
        "board": flat(1280, 720, 120, 128, 128),
        "student": flat(1280, 720, 160, 128, 128),
    }
    assert set(INSET_FOR) == set(SHOTS)
    comp = PipComposer()
    x, y, w, h = comp.layout.inset_box()
    luma = {"teacher": 40, "board": 120, "student": 160}
    cases: list[tuple[Shot, str, str]] = [
        ("teacher_wide", "teacher", "board"),
        ("board", "board", "teacher"),
        ("student", "student", "teacher"),
    ]
    for shot, main_role, inset_role in cases:
        frame = comp.compose_for(shot, sources)
        assert frame is not None
        yp = planes(yuv_array(frame))[0]
        assert yp[10, 10] == luma[main_role], shot
        assert yp[y + h // 2, x + w // 2] == luma[inset_role], shot
    assert comp.compose_for("panel", sources) is None  # no panel frame: nothing to show
    only_board = comp.compose_for("board", {"board": sources["board"]})
    assert only_board is not None and (planes(yuv_array(only_board))[0] == 120).all()


def test_paste_checks_its_arguments() -> None:
    dst = np.zeros((90 * 3 // 2, 160), dtype=np.uint8)
    src = np.full((30 * 3 // 2, 40), 9, dtype=np.uint8)
    paste(dst, src, 10, 20)
    assert (planes(dst)[0][20:50, 10:50] == 9).all()
    with pytest.raises(ValueError, match="even"):
        paste(dst, src, 11, 20)
    with pytest.raises(ValueError, match="inside"):
        paste(dst, src, 130, 20)
    with pytest.raises(ValueError, match="yuv420p"):
        planes(np.zeros((91, 160), dtype=np.uint8))
