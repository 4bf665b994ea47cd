"""Stitching a track's segments into one playable MP4 — a remux, never a re-encode.

A segment that cannot be read (damaged in storage, cut short, another codec or time
base) is left out, named in ``StitchResult.skipped``, and its time stays a gap on the
lesson's timeline: one bad file never costs the rest of the lesson its recording. Only a
track with no readable segment at all fails.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from controller.storage.errors import StitchError


@dataclass(frozen=True)
class StitchResult:
    """The stitched file."""

    path: pathlib.Path
    duration_s: float
    frames: int
    codec: str
    skipped: tuple[str, ...] = ()  # "<segment name>: why", each segment left out


def stitch(
    segments: list[pathlib.Path], out: pathlib.Path, starts: list[float] | None = None
) -> StitchResult:
    """Concatenate segments of one track (in order) into ``out``, starting at time 0.

    Each MP4 segment restarts its own clock at 0, so ``starts`` (seconds, from the
    manifest) places each segment on the lesson's timeline, keeping any gap as a gap.
    Without ``starts`` the segments are laid back to back. Every stream of the segments
    (video, and the microphone muxed with it) is carried over.
    """
    if not segments:
        raise StitchError(f"{out}: no segments to stitch")
    if starts is not None and len(starts) != len(segments):
        raise StitchError(f"{out}: {len(segments)} segments but {len(starts)} start times")
    part = out.with_name(out.name + ".part")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        output = av.open(str(part), "w", format="mp4", options={"movflags": "+faststart"})
    except (av.FFmpegError, OSError) as err:
        raise StitchError(f"{part}: cannot create: {err}") from err
    try:
        result = _remux(segments, starts, output, out)
        output.close()
    except BaseException as err:
        output.close()
        part.unlink(missing_ok=True)
        if isinstance(err, av.FFmpegError):
            raise StitchError(f"{out}: remux failed: {err}") from err
        raise
    with open(part, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(part, out)
    return result


def _packets(source: Any, path: pathlib.Path, skipped: list[str]) -> Iterator[Any]:
    """A segment's packets; one damaged inside ends there (what came before is kept)."""
    demux = source.demux()
    count = 0
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            return
        except av.FFmpegError as err:
            skipped.append(
                f"{path.name}: damaged after {count} packets ({err}); the rest is left out"
            )
            return
        count += 1
        yield packet


def _remux(
    segments: list[pathlib.Path], starts: list[float] | None, output: Any, out: pathlib.Path
) -> StitchResult:
    layout: list[str] = []  # codec of each stream, from the first segment
    out_streams: list[Any] = []
    last_dts: list[int | None] = []
    ends: list[int] = []
    bases: list[Fraction] = []
    frames = 0
    offset_s = 0.0
    skipped: list[str] = []
    for index, path in enumerate(segments):
        try:
            source = av.open(str(path))
        except (av.FFmpegError, OSError) as err:
            skipped.append(f"{path.name}: not a readable MP4 segment ({err})")
            continue
        with source:
            codecs = [s.codec_context.name for s in source.streams]
            if not codecs:
                skipped.append(f"{path.name}: has no streams")
                continue
            if not layout:
                layout = codecs
                out_streams = [output.add_stream_from_template(s) for s in source.streams]
                bases = [Fraction(s.time_base or Fraction(1, 90000)) for s in source.streams]
                last_dts = [None] * len(codecs)
                ends = [0] * len(codecs)
            elif codecs[0] != layout[0]:
                skipped.append(
                    f"{path.name}: codec {codecs[0]} differs from the track's {layout[0]}"
                )
                continue
            odd = [
                f"time base {s.time_base} of {name} differs from the track's {base}"
                for s, name in zip(source.streams, codecs, strict=True)
                if name in layout and s.time_base != (base := bases[layout.index(name)])
            ]
            if odd:
                skipped.append(f"{path.name}: {odd[0]}")
                continue
            if starts is not None:
                offset_s = starts[index] - starts[0]
            elif index:
                offset_s = float(ends[0] * bases[0])
            # The file's own origin: where its first stream (video) starts.
            lead = source.streams[0]
            origin_s = float((lead.start_time or 0) * (lead.time_base or Fraction(1, 90000)))
            for packet in _packets(source, path, skipped):
                if packet.dts is None or packet.size == 0:
                    continue
                src = packet.stream.index
                # map by codec so a segment that lacks the microphone still lines up
                name = codecs[src]
                if name not in layout:
                    continue
                dst = layout.index(name)
                offset = round((offset_s - origin_s) / bases[dst])
                dts = packet.dts + offset
                pts = (packet.pts if packet.pts is not None else packet.dts) + offset
                previous = last_dts[dst]
                if previous is not None and dts <= previous:
                    shift = previous + 1 - dts
                    dts, pts = dts + shift, pts + shift
                packet.dts, packet.pts = dts, pts
                packet.stream = out_streams[dst]
                output.mux(packet)
                last_dts[dst] = dts
                ends[dst] = max(ends[dst], pts + (packet.duration or 0))
                if dst == 0:
                    frames += 1
    if not layout or frames == 0:
        raise StitchError(
            f"{out}: no readable segment among {len(segments)}: " + "; ".join(skipped[:3])
        )
    return StitchResult(
        path=out,
        duration_s=float(ends[0] * bases[0]),
        frames=frames,
        codec=layout[0],
        skipped=tuple(skipped),
    )
