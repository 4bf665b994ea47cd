"""V4L2 cameras and HDMI capture cards: what they offer and which mode to open.

The agent opens a V4L2 node through PyAV (``av.open(dev, format="v4l2", options=...)``).
This module stays thin on purpose: it reads what the device offers from the text that
``v4l2-ctl --list-formats-ext`` prints, picks one native mode for the size and rate the
profile asks for, and turns that choice into PyAV's v4l2 input options. Everything except
running ``v4l2-ctl`` and reading sysfs is plain text handling, so it is tested from
captured output on machines without cameras.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_agent.devices.errors import DeviceError

__all__ = [
    "Negotiated",
    "V4l2Mode",
    "device_name",
    "list_devices",
    "negotiate",
    "parse_list_formats_ext",
    "probe",
]

PROBE_TIMEOUT_S = 5.0
SYSFS_VIDEO = "/sys/class/video4linux"

# V4L2 fourcc -> the name FFmpeg's v4l2 demuxer accepts as ``input_format``: a codec name
# for compressed formats, a pixel format name for raw ones. Fourccs not listed here
# cannot be requested through PyAV and are left out of negotiation.
INPUT_FORMATS: dict[str, str] = {
    "H264": "h264",
    "MJPG": "mjpeg",
    "JPEG": "mjpeg",
    "NV12": "nv12",
    "YU12": "yuv420p",
    "YUYV": "yuyv422",
    "UYVY": "uyvy422",
    "422P": "yuv422p",
    "RGB3": "rgb24",
    "BGR3": "bgr24",
    "GREY": "gray",
}

# How much we like each fourcc when nothing else separates two modes (lower is better).
# H.264 sits at the top only when it can be passed through untouched; otherwise it has to
# be decoded before re-encoding, which costs more than MJPG or raw frames.
_PASSTHROUGH_RANK = 0
_FORMAT_RANK: dict[str, int] = {
    "MJPG": 1,
    "JPEG": 1,
    "NV12": 2,
    "YU12": 3,
    "YUYV": 4,
    "UYVY": 5,
    "422P": 6,
    "H264": 7,
    "RGB3": 8,
    "BGR3": 8,
    "GREY": 9,
}

# A device rate this close below the wanted one (29.97 for 30) still counts as meeting it.
_FPS_SLACK = 0.99

_FORMAT_NEW = re.compile(r"^\s*\[\d+\]:\s*'(?P<fcc>[^']*)'")
_FORMAT_OLD = re.compile(r"^\s*Pixel Format\s*:\s*'(?P<fcc>[^']*)'")
_SIZE = re.compile(
    r"^\s*Size:\s*(?P<kind>\w+)\s+(?P<w>\d+)x(?P<h>\d+)(?:\s*-\s*(?P<w2>\d+)x(?P<h2>\d+))?"
)
_INTERVAL = re.compile(r"^\s*Interval:.*\((?P<lo>[\d.]+)(?:\s*-\s*(?P<hi>[\d.]+))?\s*fps\)")
_VIDEO_NODE = re.compile(r"^video(\d+)$")


@dataclass(frozen=True)
class V4l2Mode:
    """One native capture mode: a pixel format at one frame size and frame rate.

    ``fps`` is 0.0 when the driver lists the size but no frame intervals for it.
    """

    pixel_format: str
    width: int
    height: int
    fps: float

    def __str__(self) -> str:
        return f"{self.pixel_format} {self.width}x{self.height}@{_fmt_fps(self.fps)}"


@dataclass(frozen=True)
class Negotiated:
    """The mode picked for a wanted size and rate, and how to open it with PyAV.

    ``passthrough`` means the camera's own H.264 can be recorded without re-encoding;
    ``scale`` means the frames come at a different size and must be scaled. ``fps`` is
    the rate to request from the device; 0.0 means "the mode's own rate".
    """

    mode: V4l2Mode
    input_format: str
    passthrough: bool
    scale: bool
    fps: float = 0.0

    @property
    def framerate(self) -> str:
        """The rate to request, as FFmpeg's ``framerate`` option spells it ("" if unknown)."""
        rate = self.fps or self.mode.fps
        return _fmt_rate(rate) if rate > 0 else ""

    def av_options(self) -> dict[str, str]:
        """Options for ``av.open(device, format="v4l2", options=...)``."""
        options = {
            "input_format": self.input_format,
            "video_size": f"{self.mode.width}x{self.mode.height}",
        }
        if self.framerate:
            options["framerate"] = self.framerate
        return options


def parse_list_formats_ext(text: str) -> list[V4l2Mode]:
    """Read the modes out of ``v4l2-ctl --list-formats-ext`` output.

    Both layouts are understood: the older one with ``Pixel Format: 'YUYV'`` blocks and
    the newer one with ``[0]: 'MJPG' (Motion-JPEG, compressed)`` headers. Every frame
    interval under a size becomes a mode. A stepwise or continuous size range is taken
    at its largest size and an interval range at its highest rate, since those are the
    useful ends for recording. Duplicates are dropped; order follows the output.
    """
    modes: list[V4l2Mode] = []
    fourcc: str | None = None
    size: tuple[int, int] | None = None
    size_has_interval = False

    def close_size() -> None:
        # A size the driver gave no intervals for is still a mode, at an unknown rate.
        if fourcc is not None and size is not None and not size_has_interval:
            modes.append(V4l2Mode(fourcc, size[0], size[1], 0.0))

    for line in text.splitlines():
        header = _FORMAT_NEW.match(line) or _FORMAT_OLD.match(line)
        if header:
            close_size()
            fourcc = header["fcc"].strip() or None
            size, size_has_interval = None, False
            continue
        found = _SIZE.match(line)
        if found:
            close_size()
            if found["w2"] is not None:
                size = (int(found["w2"]), int(found["h2"]))
            else:
                size = (int(found["w"]), int(found["h"]))
            size_has_interval = False
            continue
        found = _INTERVAL.match(line)
        if found and fourcc is not None and size is not None:
            rate = float(found["hi"] if found["hi"] is not None else found["lo"])
            modes.append(V4l2Mode(fourcc, size[0], size[1], rate))
            size_has_interval = True
    close_size()
    return list(dict.fromkeys(modes))


def negotiate(
    modes: Sequence[V4l2Mode],
    width: int,
    height: int,
    fps: float,
    prefer_h264: bool = True,
    *,
    device: str | None = None,
) -> Negotiated:
    """Pick the native mode that best serves a wanted ``width``x``height`` at ``fps``.

    Order of preference:

    1. the exact size at the wanted rate or faster;
    2. the smallest size at least as large in both directions, at the wanted rate
       (frames are scaled down);
    3. the exact size, then the smallest larger size, at whatever rate it has (fastest
       first);
    4. failing all that, the largest smaller size (fastest rate first).

    Between modes of the same size, H.264 comes first when ``prefer_h264`` and the size
    is exact (it can be recorded as it is), then MJPG, then raw (NV12 before YUYV), then
    H.264 that would have to be decoded. Between equal formats, the lowest rate that is
    still fast enough wins. ``device`` only names the device in error messages.

    Raises DeviceError when there is nothing to choose from.
    """
    wanted = f"{width}x{height}@{_fmt_fps(fps)}"
    where = f"{device}: " if device else ""
    if not modes:
        raise DeviceError(f"{where}cannot capture {wanted}: the device offers no capture modes")
    usable = [m for m in modes if m.pixel_format in INPUT_FORMATS]
    if not usable:
        raise DeviceError(
            f"{where}cannot capture {wanted}: none of the device's formats can be opened "
            f"through FFmpeg (offers {describe_modes(modes)})"
        )

    def rank(mode: V4l2Mode) -> tuple[int, int, int, float]:
        exact = (mode.width, mode.height) == (width, height)
        covers = mode.width >= width and mode.height >= height
        fast = mode.fps == 0 or mode.fps >= fps * _FPS_SLACK
        area = mode.width * mode.height
        if exact and fast:
            tier, size_key = 0, 0
        elif covers and fast:
            tier, size_key = 1, area
        elif covers:
            tier, size_key = 2 if exact else 3, area
        else:
            tier, size_key = 4 if fast else 5, -area
        if prefer_h264 and exact and mode.pixel_format == "H264":
            format_key = _PASSTHROUGH_RANK
        else:
            format_key = _FORMAT_RANK.get(mode.pixel_format, len(_FORMAT_RANK))
        # Unknown rates (0.0) sort after known ones that are fast enough.
        rate_key = (mode.fps if mode.fps else float("inf")) if fast else -mode.fps
        return tier, size_key, format_key, rate_key

    best = min(usable, key=rank)
    scale = (best.width, best.height) != (width, height)
    return Negotiated(
        mode=best,
        input_format=INPUT_FORMATS[best.pixel_format],
        passthrough=prefer_h264 and best.pixel_format == "H264" and not scale,
        scale=scale,
        fps=best.fps or fps,
    )


def describe_modes(modes: Iterable[V4l2Mode]) -> str:
    """A compact one-line summary: each format with its sizes at their fastest rate."""
    fastest: dict[str, dict[tuple[int, int], float]] = {}
    for mode in modes:
        sizes = fastest.setdefault(mode.pixel_format, {})
        key = (mode.width, mode.height)
        sizes[key] = max(sizes.get(key, 0.0), mode.fps)
    if not fastest:
        return "nothing"
    return "; ".join(
        f"{fourcc} " + ", ".join(f"{w}x{h}@{_fmt_fps(r)}" for (w, h), r in sizes.items())
        for fourcc, sizes in fastest.items()
    )


def list_devices(root: str = "/dev") -> list[str]:
    """The ``videoN`` nodes under ``root``, in numeric order (video2 before video10)."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    nodes = [(int(m[1]), name) for name in names if (m := _VIDEO_NODE.match(name))]
    return [os.path.join(root, name) for _, name in sorted(nodes)]


def probe(device: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> list[V4l2Mode]:
    """The modes ``device`` offers, according to ``v4l2-ctl --list-formats-ext``.

    Returns [] when v4l2-ctl is not installed (nothing can be learnt, which is not an
    error by itself). Raises DeviceError naming the device when the command fails or
    does not answer within ``timeout_s``.
    """
    exe = shutil.which("v4l2-ctl")
    if exe is None:
        return []
    try:
        done = subprocess.run(
            [exe, "--device", device, "--list-formats-ext"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except subprocess.TimeoutExpired as exc:
        raise DeviceError(f"{device}: v4l2-ctl did not answer within {timeout_s:g} s") from exc
    except OSError as exc:
        raise DeviceError(f"{device}: could not run v4l2-ctl: {exc}") from exc
    if done.returncode != 0:
        reason = _first_line(done.stderr) or _first_line(done.stdout) or "no message"
        raise DeviceError(
            f"{device}: v4l2-ctl --list-formats-ext failed (exit {done.returncode}): {reason}"
        )
    return parse_list_formats_ext(done.stdout)


def device_name(device: str, *, sysfs: str = SYSFS_VIDEO) -> str | None:
    """The driver's name for ``device`` (e.g. "HD Pro Webcam C920"), or None if unknown.

    Symlinks such as ``/dev/v4l/by-id/...`` are followed to the ``videoN`` node first.
    """
    node = os.path.basename(os.path.realpath(device))
    try:
        name = (Path(sysfs) / node / "name").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return name.strip() or None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _fmt_fps(rate: float) -> str:
    """A rate for people: 30, 29.97, or "?" when unknown."""
    if rate <= 0:
        return "?"
    return f"{rate:.3f}".rstrip("0").rstrip(".")


def _fmt_rate(rate: float) -> str:
    """A rate for FFmpeg: whole numbers as is, NTSC rates (29.97...) as N*1000/1001."""
    if abs(rate - round(rate)) < 0.001:
        return str(round(rate))
    ntsc = rate * 1001 / 1000
    if abs(ntsc - round(ntsc)) < 0.01:
        return f"{round(ntsc) * 1000}/1001"
    return _fmt_fps(rate)
