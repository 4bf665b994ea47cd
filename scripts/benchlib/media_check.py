"""ffprobe checks of a recording: codec, clean decode, duration and monotonic timestamps."""

from __future__ import annotations

import itertools
import json
import pathlib
import subprocess
from typing import Any


def probe_recording(
    path: pathlib.Path, expected_s: float | None = None, tolerance_s: float = 1.0
) -> dict[str, Any]:
    """Inspect one file with ffprobe; ``ok`` is False with ``problems`` listed otherwise."""
    problems: list[str] = []
    meta = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if meta.returncode != 0 or meta.stderr.strip():
        problems.append(f"ffprobe: {meta.stderr.strip()[:300] or 'failed'}")
    info = json.loads(meta.stdout or "{}")
    streams = info.get("streams", [])
    codec = streams[0].get("codec_name", "?") if streams else "?"
    kind = streams[0].get("codec_type", "?") if streams else "?"
    duration = float(info.get("format", {}).get("duration", 0.0) or 0.0)
    if kind == "video" and codec != "h264":
        problems.append(f"video codec is {codec}, expected h264")
    if expected_s is not None and abs(duration - expected_s) > tolerance_s:
        problems.append(
            f"duration {duration:.2f} s differs from {expected_s:g} s "
            f"by more than {tolerance_s:g} s"
        )
    dts: list[int] = []
    for index in range(len(streams)):
        values = _dts(path, index)
        backwards = sum(1 for a, b in itertools.pairwise(values) if b <= a)
        if backwards:
            problems.append(f"stream {index}: {backwards} non-increasing timestamps")
        if index == 0:
            dts = values
    decode = subprocess.run(
        # Decode every frame on the file's own timestamps: a lesson with an outage has a
        # gap, and ffmpeg's default frame-rate time base would misreport that as an error.
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "-1",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if decode.returncode != 0 or decode.stderr.strip():
        problems.append(f"decode errors: {decode.stderr.strip()[:300]}")
    return {
        "path": str(path),
        "ok": not problems,
        "codec": codec,
        "kind": kind,
        "streams": [s.get("codec_name", "?") for s in streams],
        "duration_s": duration,
        "packets": len(dts),
        "problems": problems,
    }


def _dts(path: pathlib.Path, index: int) -> list[int]:
    """Decode timestamps of one stream's packets, in file order."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            str(index),
            "-show_entries",
            "packet=dts",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return [int(x) for x in out.stdout.split() if x.strip().lstrip("-").isdigit()]
