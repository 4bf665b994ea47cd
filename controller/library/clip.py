"""Cutting a clip (微课) out of a stitched recording: a remux at key frames, never a
re-encode, in a sandboxed child process like stitching (``controller.storage.sandbox``).

The clip starts at the last video key frame at or before the asked start, and ends just
before the first key frame at or after the asked end, so it plays from its first frame
and is within one GOP of what was asked at each end. Audio muxed with the video is cut to
the same span (the video's key frames decide where). Timestamps are moved so the clip starts at 0.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from controller.common.errors import InvalidRequest
from controller.storage.errors import StitchError
from controller.storage.sandbox import SandboxLimits, run_child

MAX_CLIP_S = 300.0  # a micro-lesson is at most five minutes


class ClipError(StitchError):
    """The source could not be cut (unreadable, nothing in the span)."""


@dataclass(frozen=True)
class ClipResult:
    """The clip file written."""

    path: pathlib.Path
    start_s: float  # where the cut begins on the source's timeline (a key frame)
    end_s: float
    duration_s: float
    codec: str
    frames: int


def check_span(start_s: float, end_s: float, source_s: float) -> None:
    """Refuse a span that is not a clip of the source (InvalidRequest naming why)."""
    if start_s < 0:
        raise InvalidRequest(f"field 'start_s' is {start_s:g}; a clip starts at 0 s or later")
    if end_s <= start_s:
        raise InvalidRequest(f"field 'end_s' ({end_s:g}) must be after 'start_s' ({start_s:g})")
    if end_s - start_s > MAX_CLIP_S:
        raise InvalidRequest(
            f"a clip is at most {MAX_CLIP_S:g} s (5 minutes); {start_s:g}–{end_s:g} s is "
            f"{end_s - start_s:g} s: cut a shorter span"
        )
    if start_s >= source_s:
        raise InvalidRequest(
            f"field 'start_s' ({start_s:g} s) is past the end of the recording, which "
            f"lasts {source_s:.1f} s"
        )
    if end_s > source_s + 0.5:
        raise InvalidRequest(
            f"field 'end_s' ({end_s:g} s) is past the end of the recording, which lasts "
            f"{source_s:.1f} s"
        )


def cut(source: pathlib.Path, out: pathlib.Path, start_s: float, end_s: float) -> ClipResult:
    """Remux ``source``'s span [start_s, end_s), widened to key frames, into ``out``."""
    part = out.with_name(out.name + ".part")
    try:
        src = av.open(str(source))
    except (av.FFmpegError, OSError) as err:
        raise ClipError(f"{source.name}: not a readable recording ({err})") from err
    try:
        with src:
            output = av.open(str(part), "w", format="mp4", options={"movflags": "+faststart"})
            try:
                result = _remux(src, output, out, start_s, end_s)
            finally:
                output.close()
    except BaseException as err:
        part.unlink(missing_ok=True)
        if isinstance(err, av.FFmpegError):
            raise ClipError(f"{source.name}: cutting failed: {err}") from err
        raise
    with open(part, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(part, out)
    return result


def _remux(src: Any, output: Any, out: pathlib.Path, start_s: float, end_s: float) -> ClipResult:
    streams = list(src.streams)
    if not streams:
        raise ClipError(f"{out.name}: the recording has no streams")
    lead = streams[0]
    bases = [Fraction(s.time_base or Fraction(1, 90000)) for s in streams]
    dst = [output.add_stream_from_template(s) for s in streams]
    # Land on the key frame at or before the start (the demuxer seeks backward).
    src.seek(round(start_s / bases[0]), stream=lead, backward=True, any_frame=False)
    cut_from: float | None = None  # seconds: the first key frame muxed
    cut_to: float | None = None
    shift: list[int] = [0] * len(streams)
    last_dts: list[int | None] = [None] * len(streams)
    ends = [0] * len(streams)
    frames = 0
    for packet in src.demux():
        if packet.dts is None or packet.size == 0:
            continue
        i = packet.stream.index
        when = float((packet.pts if packet.pts is not None else packet.dts) * bases[i])
        if i == 0:
            if cut_from is None:
                if not packet.is_keyframe:
                    continue
                cut_from = when
                shift = [round(cut_from / b) for b in bases]
            elif packet.is_keyframe and when >= end_s - 1e-6:
                cut_to = when
                break
        if cut_from is None or when < cut_from - 1e-6:
            continue  # audio from before the first key frame
        dts = packet.dts - shift[i]
        pts = (packet.pts if packet.pts is not None else packet.dts) - shift[i]
        previous = last_dts[i]
        if previous is not None and dts <= previous:
            continue
        packet.dts, packet.pts = dts, pts
        packet.stream = dst[i]
        output.mux(packet)
        last_dts[i] = dts
        ends[i] = max(ends[i], pts + (packet.duration or 0))
        if i == 0:
            frames += 1
    if cut_from is None or frames == 0:
        raise ClipError(f"{out.name}: no video key frame between {start_s:g} s and the end")
    duration = float(ends[0] * bases[0])
    return ClipResult(
        path=out,
        start_s=round(cut_from, 3),
        end_s=round(cut_to if cut_to is not None else cut_from + duration, 3),
        duration_s=duration,
        codec=lead.codec_context.name,
        frames=frames,
    )


def cut_sandboxed(
    source: pathlib.Path,
    out: pathlib.Path,
    start_s: float,
    end_s: float,
    limits: SandboxLimits | None = None,
) -> ClipResult:
    """``cut()`` in a sandboxed child process (the recording's bytes came from a
    classroom PC); raises ClipError on any failure."""
    job = {"source": str(source), "out": str(out), "start_s": start_s, "end_s": end_s}
    try:
        ok = run_child(
            "controller.library.clip_child",
            job,
            out,
            f"cutting {source.name}",
            limits or SandboxLimits(cpu_s=120, timeout_s=120.0),
        )
    except StitchError as err:
        raise ClipError(str(err)) from err
    return ClipResult(
        pathlib.Path(ok["path"]),
        ok["start_s"],
        ok["end_s"],
        ok["duration_s"],
        ok["codec"],
        ok["frames"],
    )
