"""Scaling straight into a window's pixels: the same picture PyAV's reformat makes, in
place, and not one byte outside the rectangle it was given."""

from __future__ import annotations

import sys

import av
import numpy as np
import pytest

from edge_agent.devices.synthetic import SyntheticCamera
from edge_agent.room.scaler import DirectScaler, pixel_format

PAD = 0xA5  # what surrounds the target rectangle; it must survive every scale


def canvas(rows: int, pitch: int) -> np.ndarray:
    return np.full((rows, pitch), PAD, dtype=np.uint8)


def scale_into(
    scaler: DirectScaler, frame: av.VideoFrame, buf: np.ndarray, x: int, y: int, w: int, h: int
) -> None:
    pitch = buf.shape[1]
    scaler.scale_into(frame, buf.reshape(-1), y * pitch + x * 4, pitch, w, h)


def reference(frame: av.VideoFrame, w: int, h: int, fmt: str = "bgra") -> np.ndarray:
    out = frame.reformat(w, h, fmt, interpolation="FAST_BILINEAR", threads=1)
    return np.asarray(out.to_ndarray(), dtype=np.uint8)


def test_the_picture_is_the_one_reformat_makes_at_its_place_and_nothing_else_changes() -> None:
    frame = SyntheticCamera(1280, 720, 30, "T").frame(7, 1_700_000_000_000)
    w, h, x, y, pitch = 1226, 690, 27, 15, 1280 * 4 + 64  # a padded row, as X gives
    buf = canvas(720, pitch)
    scaler = DirectScaler("bgra")
    scale_into(scaler, frame, buf, x, y, w, h)
    got = buf[y : y + h, x * 4 : (x + w) * 4].reshape(h, w, 4)
    want = reference(frame, w, h)
    # colour and scaling as before: at most a rounding step apart anywhere
    assert np.abs(got[..., :3].astype(int) - want[..., :3]).max() <= 2
    outside = buf.copy()
    outside[y : y + h, x * 4 : (x + w) * 4] = PAD
    assert (outside == PAD).all(), "swscale wrote outside the tile's rectangle"
    scaler.close()


def test_swscale_overrun_past_each_row_is_put_back_even_across_the_row_end() -> None:
    """Pictures end 6 px from the window's right edge: what swscale writes past a row
    lands at the start of the next row, the other side of the window."""
    frame = SyntheticCamera(1280, 720, 30, "E").frame(9, 0)
    w, h, pitch = 626, 352, 640 * 4
    x = 640 - w - 6 + 5  # 1 px from the row's end: the overrun wraps round
    buf = canvas(400, pitch)
    unguarded = buf.copy()
    DirectScaler("bgra").scale(frame, unguarded.ctypes.data + 10 * pitch + x * 4, pitch, w, h)
    wrapped = unguarded[11 : 10 + h, :32]
    assert (wrapped != PAD).any(), "no overrun to put back: this test no longer tests it"
    scale_into(DirectScaler("bgra"), frame, buf, x, 10, w, h)
    outside = buf.copy()
    outside[10 : 10 + h, x * 4 : (x + w) * 4] = PAD
    assert (outside == PAD).all()


def test_a_picture_whose_overrun_would_leave_the_memory_is_refused() -> None:
    frame = SyntheticCamera(320, 180, 30, "L").frame(1, 0)
    buf = canvas(180, 320 * 4)  # the picture's last row is the memory's last
    with pytest.raises(ValueError, match="does not fit"):
        scale_into(DirectScaler("bgra"), frame, buf, 0, 0, 320, 180)
    assert (buf == PAD).all()


def test_a_new_frame_size_and_a_new_tile_size_are_both_followed() -> None:
    scaler = DirectScaler("bgra")
    buf = canvas(400, 800 * 4)
    small = SyntheticCamera(320, 180, 30, "S").frame(1, 0)
    big = SyntheticCamera(1280, 720, 30, "B").frame(2, 0)
    for frame, (w, h) in ((small, (640, 360)), (big, (640, 360)), (big, (400, 226))):
        buf[:] = PAD
        scale_into(scaler, frame, buf, 0, 0, w, h)
        got = buf[:h, : w * 4].reshape(h, w, 4)
        assert np.abs(got[..., :3].astype(int) - reference(frame, w, h)[..., :3]).max() <= 2
        assert (buf[h:] == PAD).all() and (buf[:h, w * 4 :] == PAD).all()
    scaler.close()


def test_the_frames_colour_matrix_is_used_as_reformat_uses_it() -> None:
    frame = SyntheticCamera(640, 360, 30, "C").frame(3, 0)
    frame.colorspace = 1  # BT.709, as a camera may tag its stream
    buf = canvas(361, 640 * 4)
    scaler = DirectScaler("bgra")
    scale_into(scaler, frame, buf, 0, 0, 640, 360)
    want = reference(frame, 640, 360)
    got = buf[:360].reshape(360, 640, 4)
    assert np.abs(got[..., :3].astype(int) - want[..., :3]).max() <= 2
    frame.colorspace = 2  # and back to unspecified (BT.601) on the same scaler
    scale_into(scaler, frame, buf, 0, 0, 640, 360)
    assert np.abs(got[..., :3].astype(int) - reference(frame, 640, 360)[..., :3]).max() <= 2
    scaler.close()


def test_the_mirror_layout_gets_red_and_blue_swapped() -> None:
    frame = SyntheticCamera(640, 360, 30, "M").frame(4, 0)
    buf = canvas(361, 640 * 4)
    scale_into(DirectScaler("rgba"), frame, buf, 0, 0, 640, 360)
    got = buf[:360].reshape(360, 640, 4)
    assert np.abs(got[..., :3].astype(int) - reference(frame, 640, 360, "rgba")[..., :3]).max() <= 2


def test_an_unknown_pixel_format_is_named() -> None:
    with pytest.raises(ValueError, match="no pixel format 'nonsense'"):
        pixel_format("nonsense")


def test_a_scale_holds_no_python_memory_alive() -> None:
    """The decoded frame is only read: the scaler keeps no reference to it."""
    frame = SyntheticCamera(320, 180, 30, "R").frame(5, 0)
    scaler = DirectScaler("bgra")
    before = sys.getrefcount(frame)
    scale_into(scaler, frame, canvas(181, 320 * 4), 0, 0, 320, 180)
    assert sys.getrefcount(frame) == before
    scaler.close()
