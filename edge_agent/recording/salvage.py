"""Turning the segment a killed agent left open (``.mp4.part``) back into a segment.

The open segment is a fragmented MP4 flushed fragment by fragment, so everything up to
its last complete ``moof``+``mdat`` pair is sound. Salvage copies exactly that prefix
into the closed segment's name, probes it for its frames and end time, and writes the
sidecar — the same figures a clean close would have left. A part with no complete
fragment is renamed ``.unrecoverable`` and kept, never deleted.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import struct
from fractions import Fraction

import av

from edge_agent.recording.segments import SegmentInfo, sha256_file, write_sidecar

log = logging.getLogger(__name__)


def sound_prefix(data: bytes) -> int:
    """Bytes of ``data`` made of whole top-level boxes, ending after a complete fragment."""
    pos, end_ok, have_moov, pending_moof = 0, 0, False, False
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > len(data):
                break
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            header = 16
        if size < header or pos + size > len(data):
            break
        if kind == b"moov":
            have_moov = True
        elif kind == b"moof":
            pending_moof = True
        elif kind == b"mdat" and pending_moof and have_moov:
            pending_moof = False
            end_ok = pos + size
        pos += size
    return end_ok


def salvage_part(part: pathlib.Path) -> SegmentInfo | None:
    """Close a killed run's open segment; returns its figures, or None if nothing was sound."""
    meta_path = part.with_name(part.name + ".json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = None
    data = part.read_bytes()
    keep = sound_prefix(data)
    if meta is None or keep == 0:
        os.replace(part, part.with_name(part.name + ".unrecoverable"))
        log.warning("%s: no complete fragment to salvage; kept as .unrecoverable", part)
        return None
    final = part.with_name(part.name.removesuffix(".part"))
    tmp = final.with_name(final.name + ".salvage")
    with open(tmp, "wb") as fh:
        fh.write(data[:keep])
        fh.flush()
        os.fsync(fh.fileno())
    frames, duration_s = _probe(tmp)
    if frames == 0:
        tmp.unlink(missing_ok=True)
        os.replace(part, part.with_name(part.name + ".unrecoverable"))
        return None
    os.replace(tmp, final)
    part.unlink()
    first = float(meta["first_pts_s"])
    info = SegmentInfo(
        path=final,
        track=str(meta["track"]),
        kind=str(meta["kind"]),
        seq=int(meta["seq"]),
        first_pts_s=first,
        last_pts_s=first + duration_s,
        frames=frames,
        bytes=final.stat().st_size,
        sha256=sha256_file(final),
    )
    write_sidecar(info)
    meta_path.unlink(missing_ok=True)
    log.warning(
        "salvaged %s: %d frames, %.2f s (%d of %d bytes were whole)",
        final.name,
        frames,
        duration_s,
        keep,
        len(data),
    )
    return info


def _probe(path: pathlib.Path) -> tuple[int, float]:
    """Frames of the first stream and its end time (s) relative to the file's start."""
    frames, end = 0, 0.0
    try:
        with av.open(str(path)) as container:
            lead = container.streams[0]
            base = Fraction(lead.time_base or Fraction(1, 90000))
            for packet in container.demux(lead):
                if packet.pts is None or packet.size == 0:
                    continue
                frames += 1
                end = max(end, float((packet.pts + (packet.duration or 0)) * base))
    except (av.FFmpegError, OSError) as err:
        log.warning("%s: probing the salvaged segment stopped: %s", path, err)
    return frames, end


def salvage_directory(directory: pathlib.Path) -> list[SegmentInfo]:
    """Salvage every open segment a killed run left in one track directory."""
    if not directory.exists():
        return []
    out = []
    for part in sorted(directory.glob("*.mp4.part")):
        info = salvage_part(part)
        if info is not None:
            out.append(info)
    return out
