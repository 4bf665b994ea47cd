"""V4L2 mode parsing and negotiation, from captured ``v4l2-ctl --list-formats-ext`` text."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edge_agent.devices.errors import DeviceError
from edge_agent.devices.v4l2 import (
    Negotiated,
    V4l2Mode,
    describe_modes,
    device_name,
    list_devices,
    negotiate,
    parse_list_formats_ext,
    probe,
)

# A generic UVC webcam, newer v4l2-ctl layout: raw YUYV is slow at large sizes, MJPG is not.
UVC_WEBCAM = """\
ioctl: VIDIOC_ENUM_FMT
\tType: Video Capture

\t[0]: 'YUYV' (YUYV 4:2:2)
\t\tSize: Discrete 640x480
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\t\tInterval: Discrete 0.067s (15.000 fps)
\t\tSize: Discrete 1280x720
\t\t\tInterval: Discrete 0.100s (10.000 fps)
\t\tSize: Discrete 1920x1080
\t\t\tInterval: Discrete 0.200s (5.000 fps)
\t[1]: 'MJPG' (Motion-JPEG, compressed)
\t\tSize: Discrete 640x480
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\t\tInterval: Discrete 0.067s (15.000 fps)
\t\tSize: Discrete 1280x720
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\tSize: Discrete 1920x1080
\t\t\tInterval: Discrete 0.033s (30.000 fps)
"""

# A Logitech C920-style camera with on-board H.264, older v4l2-ctl layout.
H264_CAMERA_OLD = """\
ioctl: VIDIOC_ENUM_FMT
\tIndex       : 0
\tType        : Video Capture
\tPixel Format: 'YUYV'
\tName        : YUYV 4:2:2
\t\tSize: Discrete 640x480
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\t\tInterval: Discrete 0.042s (24.000 fps)
\t\t\tInterval: Discrete 0.050s (20.000 fps)
\t\tSize: Discrete 1280x720
\t\t\tInterval: Discrete 0.100s (10.000 fps)
\t\tSize: Discrete 1920x1080
\t\t\tInterval: Discrete 0.200s (5.000 fps)

\tIndex       : 1
\tType        : Video Capture
\tPixel Format: 'H264' (compressed)
\tName        : H.264
\t\tSize: Discrete 640x480
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\tSize: Discrete 1280x720
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\t\tInterval: Discrete 0.067s (15.000 fps)
\t\tSize: Discrete 1920x1080
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\t\tInterval: Discrete 0.067s (15.000 fps)

\tIndex       : 2
\tType        : Video Capture
\tPixel Format: 'MJPG' (compressed)
\tName        : Motion-JPEG
\t\tSize: Discrete 640x480
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\tSize: Discrete 1280x720
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\tSize: Discrete 1920x1080
\t\t\tInterval: Discrete 0.033s (30.000 fps)
"""

# A USB HDMI capture card: uncompressed only, one size, 60 fps.
HDMI_CAPTURE = """\
ioctl: VIDIOC_ENUM_FMT
\tType: Video Capture

\t[0]: 'YUYV' (YUYV 4:2:2)
\t\tSize: Discrete 1920x1080
\t\t\tInterval: Discrete 0.017s (60.000 fps)
\t[1]: 'NV12' (Y/UV 4:2:0)
\t\tSize: Discrete 1920x1080
\t\t\tInterval: Discrete 0.017s (60.000 fps)
"""

# Drivers that give ranges (stepwise / continuous) or sizes without intervals.
RANGES = """\
ioctl: VIDIOC_ENUM_FMT
\tType: Video Capture Multiplanar

\t[0]: 'NV12' (Y/UV 4:2:0)
\t\tSize: Stepwise 32x32 - 3840x2160 with step 2/2
\t\t\tInterval: Continuous 0.017s - 1.000s (1.000-59.940 fps)
\t[1]: 'YUYV' (YUYV 4:2:2)
\t\tSize: Discrete 1280x720
\t[2]: 'Y10B' (10-bit Greyscale (Packed))
\t\tSize: Discrete 1280x800
\t\t\tInterval: Discrete 0.033s (30.000 fps)
"""


def test_parses_the_newer_layout() -> None:
    modes = parse_list_formats_ext(UVC_WEBCAM)
    assert modes == [
        V4l2Mode("YUYV", 640, 480, 30.0),
        V4l2Mode("YUYV", 640, 480, 15.0),
        V4l2Mode("YUYV", 1280, 720, 10.0),
        V4l2Mode("YUYV", 1920, 1080, 5.0),
        V4l2Mode("MJPG", 640, 480, 30.0),
        V4l2Mode("MJPG", 640, 480, 15.0),
        V4l2Mode("MJPG", 1280, 720, 30.0),
        V4l2Mode("MJPG", 1920, 1080, 30.0),
    ]


def test_parses_the_older_layout() -> None:
    modes = parse_list_formats_ext(H264_CAMERA_OLD)
    assert len(modes) == 13
    assert {m.pixel_format for m in modes} == {"YUYV", "H264", "MJPG"}
    assert V4l2Mode("YUYV", 640, 480, 24.0) in modes
    assert V4l2Mode("H264", 1920, 1080, 15.0) in modes
    assert modes[-1] == V4l2Mode("MJPG", 1920, 1080, 30.0)


def test_parses_ranges_and_sizes_without_intervals() -> None:
    assert parse_list_formats_ext(RANGES) == [
        V4l2Mode("NV12", 3840, 2160, 59.94),  # the top of both ranges
        V4l2Mode("YUYV", 1280, 720, 0.0),  # rate not given
        V4l2Mode("Y10B", 1280, 800, 30.0),
    ]


def test_nothing_to_parse() -> None:
    assert parse_list_formats_ext("") == []
    assert parse_list_formats_ext("ioctl: VIDIOC_ENUM_FMT\n\tType: Video Capture\n") == []


def test_webcam_prefers_mjpg_over_slow_raw() -> None:
    modes = parse_list_formats_ext(UVC_WEBCAM)
    got = negotiate(modes, 1280, 720, 30)
    assert got == Negotiated(V4l2Mode("MJPG", 1280, 720, 30.0), "mjpeg", False, False, 30.0)
    assert got.av_options() == {
        "input_format": "mjpeg",
        "video_size": "1280x720",
        "framerate": "30",
    }


def test_mjpg_beats_raw_at_the_same_size_and_the_slowest_fast_enough_rate_wins() -> None:
    modes = parse_list_formats_ext(UVC_WEBCAM)
    got = negotiate(modes, 640, 480, 15)
    assert got.mode == V4l2Mode("MJPG", 640, 480, 15.0)
    assert got.av_options()["framerate"] == "15"


def test_h264_camera_is_passed_through() -> None:
    modes = parse_list_formats_ext(H264_CAMERA_OLD)
    got = negotiate(modes, 1920, 1080, 30)
    assert got.mode == V4l2Mode("H264", 1920, 1080, 30.0)
    assert got.passthrough and not got.scale
    assert got.av_options() == {
        "input_format": "h264",
        "video_size": "1920x1080",
        "framerate": "30",
    }


def test_h264_is_not_chosen_when_frames_are_wanted() -> None:
    modes = parse_list_formats_ext(H264_CAMERA_OLD)
    got = negotiate(modes, 1920, 1080, 30, prefer_h264=False)
    assert got.mode == V4l2Mode("MJPG", 1920, 1080, 30.0)
    assert not got.passthrough


def test_h264_at_another_size_is_no_passthrough() -> None:
    modes = [V4l2Mode("H264", 1920, 1080, 30.0), V4l2Mode("YUYV", 1920, 1080, 30.0)]
    got = negotiate(modes, 1280, 720, 30)
    assert got.mode.pixel_format == "YUYV"  # a decode would be needed either way
    assert got.scale and not got.passthrough
    only_h264 = negotiate(modes[:1], 1280, 720, 30)
    assert only_h264.input_format == "h264"
    assert only_h264.scale and not only_h264.passthrough


def test_hdmi_card_at_its_native_size_prefers_nv12() -> None:
    modes = parse_list_formats_ext(HDMI_CAPTURE)
    got = negotiate(modes, 1920, 1080, 60)
    assert got.mode == V4l2Mode("NV12", 1920, 1080, 60.0)
    assert got.input_format == "nv12"
    assert not got.scale and not got.passthrough
    assert got.av_options() == {
        "input_format": "nv12",
        "video_size": "1920x1080",
        "framerate": "60",
    }


def test_hdmi_card_scales_down_for_a_smaller_size() -> None:
    modes = parse_list_formats_ext(HDMI_CAPTURE)
    got = negotiate(modes, 1280, 720, 30)
    assert got.mode == V4l2Mode("NV12", 1920, 1080, 60.0)
    assert got.scale
    assert got.av_options()["video_size"] == "1920x1080"


def test_smallest_larger_mode_is_picked_for_scaling() -> None:
    modes = [
        V4l2Mode("YUYV", 3840, 2160, 30.0),
        V4l2Mode("YUYV", 1920, 1080, 30.0),
        V4l2Mode("YUYV", 2560, 1440, 30.0),
        V4l2Mode("YUYV", 640, 480, 30.0),
    ]
    assert negotiate(modes, 1280, 720, 30).mode.width == 1920


def test_a_larger_mode_at_the_rate_beats_the_exact_size_too_slow() -> None:
    modes = [V4l2Mode("YUYV", 1280, 720, 10.0), V4l2Mode("YUYV", 1920, 1080, 30.0)]
    got = negotiate(modes, 1280, 720, 30)
    assert got.mode == V4l2Mode("YUYV", 1920, 1080, 30.0)
    assert got.scale


def test_exact_size_too_slow_beats_a_smaller_size() -> None:
    modes = [V4l2Mode("YUYV", 640, 480, 30.0), V4l2Mode("YUYV", 1920, 1080, 5.0)]
    got = negotiate(modes, 1920, 1080, 30)
    assert got.mode == V4l2Mode("YUYV", 1920, 1080, 5.0)
    assert not got.scale
    assert got.av_options()["framerate"] == "5"


def test_larger_than_anything_offered_takes_the_largest() -> None:
    modes = parse_list_formats_ext(UVC_WEBCAM)
    got = negotiate(modes, 3840, 2160, 30)
    assert got.mode == V4l2Mode("MJPG", 1920, 1080, 30.0)
    assert got.scale


def test_ntsc_rates_count_and_are_requested_exactly() -> None:
    modes = [V4l2Mode("YUYV", 1920, 1080, 29.97), V4l2Mode("YUYV", 1920, 1080, 59.94)]
    got = negotiate(modes, 1920, 1080, 30)
    assert got.mode.fps == pytest.approx(29.97)
    assert got.av_options()["framerate"] == "30000/1001"


def test_unknown_rate_asks_for_the_wanted_one() -> None:
    modes = parse_list_formats_ext(RANGES)
    got = negotiate(modes, 1280, 720, 25, prefer_h264=False)
    # NV12 at 3840x2160 would have to be scaled; the exact YUYV size wins.
    assert got.mode == V4l2Mode("YUYV", 1280, 720, 0.0)
    assert got.av_options() == {
        "input_format": "yuyv422",
        "video_size": "1280x720",
        "framerate": "25",
    }


def test_no_modes_is_an_error_naming_the_request() -> None:
    with pytest.raises(DeviceError, match=r"/dev/video4: cannot capture 1920x1080@30.*no capture"):
        negotiate([], 1920, 1080, 30, device="/dev/video4")


def test_only_unusable_formats_is_an_error_naming_the_offer() -> None:
    modes = [V4l2Mode("Y10B", 1280, 800, 30.0), V4l2Mode("Y10B", 640, 400, 60.0)]
    with pytest.raises(DeviceError, match=r"1280x720@30.*Y10B 1280x800@30, 640x400@60"):
        negotiate(modes, 1280, 720, 30)


def test_describe_modes_keeps_the_fastest_rate_per_size() -> None:
    text = describe_modes(parse_list_formats_ext(UVC_WEBCAM))
    assert text == (
        "YUYV 640x480@30, 1280x720@10, 1920x1080@5; MJPG 640x480@30, 1280x720@30, 1920x1080@30"
    )
    assert describe_modes([]) == "nothing"


def test_list_devices_in_numeric_order(tmp_path: Path) -> None:
    for name in ("video10", "video2", "video0", "media0", "videoX", "video1-meta"):
        (tmp_path / name).touch()
    assert list_devices(str(tmp_path)) == [
        str(tmp_path / "video0"),
        str(tmp_path / "video2"),
        str(tmp_path / "video10"),
    ]
    assert list_devices(str(tmp_path / "absent")) == []


def test_device_name_from_sysfs(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    (sysfs / "video0").mkdir(parents=True)
    (sysfs / "video0" / "name").write_text("HD Pro Webcam C920\n")
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "video0").touch()
    (dev / "by-id").mkdir()
    (dev / "by-id" / "usb-046d_HD_Pro_Webcam_C920-video-index0").symlink_to(dev / "video0")
    assert device_name(str(dev / "video0"), sysfs=str(sysfs)) == "HD Pro Webcam C920"
    link = dev / "by-id" / "usb-046d_HD_Pro_Webcam_C920-video-index0"
    assert device_name(str(link), sysfs=str(sysfs)) == "HD Pro Webcam C920"
    assert device_name(str(dev / "video7"), sysfs=str(sysfs)) is None


def _fake_v4l2_ctl(bin_dir: Path, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "v4l2-ctl"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


def test_probe_without_v4l2_ctl_returns_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert probe("/dev/video0") == []


def test_probe_runs_v4l2_ctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sample = tmp_path / "sample.txt"
    sample.write_text(HDMI_CAPTURE)
    args = tmp_path / "args.txt"
    _fake_v4l2_ctl(tmp_path / "bin", f'echo "$@" > {args}\ncat {sample}\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    assert probe("/dev/video2") == parse_list_formats_ext(HDMI_CAPTURE)
    assert args.read_text().split() == ["--device", "/dev/video2", "--list-formats-ext"]


def test_probe_failure_names_the_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_v4l2_ctl(
        tmp_path / "bin", 'echo "Cannot open device /dev/video9, exiting." >&2\nexit 1\n'
    )
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    with pytest.raises(DeviceError, match=r"^/dev/video9: .*exit 1.*Cannot open device"):
        probe("/dev/video9")


def test_probe_timeout_names_the_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_v4l2_ctl(tmp_path / "bin", "exec sleep 5\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    with pytest.raises(DeviceError, match=r"^/dev/video3: v4l2-ctl did not answer"):
        probe("/dev/video3", timeout_s=0.2)
