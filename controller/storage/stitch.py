"""Stitching a track's segments into one playable MP4 — a remux, never a re-encode."""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

import av

from controller.storage.errors import StitchError


@dataclass(frozen=True)
class StitchResult:
    """The stitched file."""

    path: pathlib.Path
    duration_s: float
    frames: int
    codec: str


def stitch(
    segments: list[pathlib.Path], out: pathlib.Path, starts: list[float] | None = None
) -> StitchResult:
    """Concatenate segments of one track (in order) into ``out``, starting at time 0.

    Each MP4 segment restarts its own clock at 0, so ``starts`` (seconds, from the
    manifest) places each segment on the lesson's timeline, keeping any gap as a gap.
    Without ``starts`` the segments are laid back to back.
    """
    if not segments:
        raise StitchError(f"{out}: no segments to stitch")
    if starts is not None and len(starts) != len(segments):
        raise StitchError(f"{out}: {len(segments)} segments but {len(starts)} start times")
    part = out.with_name(out.name + ".part")
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = 0
    codec = ""
    last_dts: int | None = None
    last_end = 0
    time_base = None
    try:
        output = av.open(str(part), "w", format="mp4", options={"movflags": "+faststart"})
    except (av.FFmpegError, OSError) as err:
        raise StitchError(f"{part}: cannot create: {err}") from err
    try:
        out_stream = None
        for index, path in enumerate(segments):
            try:
                source = av.open(str(path))
            except (av.FFmpegError, OSError) as err:
                raise StitchError(f"{path}: not a readable MP4 segment: {err}") from err
            with source:
                if not source.streams:
                    raise StitchError(f"{path}: has no streams")
                in_stream = source.streams[0]
                name = in_stream.codec_context.name
                if out_stream is None:
                    codec = name
                    out_stream = output.add_stream_from_template(in_stream)
                    time_base = in_stream.time_base
                elif name != codec:
                    raise StitchError(f"{path}: codec {name} differs from the track's {codec}")
                elif in_stream.time_base != time_base:
                    raise StitchError(
                        f"{path}: time base {in_stream.time_base} differs "
                        f"from the track's {time_base}"
                    )
                assert time_base is not None
                if starts is not None:
                    offset = round((starts[index] - starts[0]) / time_base)
                else:
                    offset = last_end
                first: int | None = None
                for packet in source.demux(in_stream):
                    if packet.dts is None or packet.size == 0:
                        continue
                    if first is None:
                        first = packet.dts
                    dts = packet.dts - first + offset
                    pts = (packet.pts if packet.pts is not None else packet.dts) - first + offset
                    if last_dts is not None and dts <= last_dts:
                        shift = last_dts + 1 - dts
                        dts, pts = dts + shift, pts + shift
                    packet.dts, packet.pts = dts, pts
                    packet.stream = out_stream
                    output.mux(packet)
                    last_dts = dts
                    last_end = max(last_end, pts + (packet.duration or 0))
                    frames += 1
        output.close()
    except av.FFmpegError as err:
        output.close()
        part.unlink(missing_ok=True)
        raise StitchError(f"{out}: remux failed: {err}") from err
    except BaseException:
        output.close()
        part.unlink(missing_ok=True)
        raise
    with open(part, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(part, out)
    assert time_base is not None
    return StitchResult(
        path=out, duration_s=float(last_end * time_base), frames=frames, codec=codec
    )
