"""The recording catalogue: lesson → classrooms → tracks → segments, and coverage.

Coverage is computed from a classroom's manifest against the lesson's scheduled window:
the share of scheduled seconds each track has media for. The seconds that are missing
are listed as gaps, each with its reason — the agent's own declared gaps (a source lost,
the agent not running between two runs), or "unknown" when nothing explains them.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.manifest import GapEntry, Manifest, TrackEntry

Interval = tuple[float, float]
# Segment boundaries may leave a few milliseconds between consecutive files (one frame's
# duration is the end of the last frame); that is not missing media.
JOIN_TOLERANCE_S = 0.12


def merge(intervals: list[Interval], tolerance: float = JOIN_TOLERANCE_S) -> list[Interval]:
    """Union of intervals, joining ones that touch within ``tolerance``."""
    out: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if out and start <= out[-1][1] + tolerance:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def clip(intervals: list[Interval], lo: float, hi: float) -> list[Interval]:
    """Intervals cut to [lo, hi]."""
    return [(max(a, lo), min(b, hi)) for a, b in intervals if b > lo and a < hi]


def total(intervals: list[Interval]) -> float:
    """Summed length."""
    return sum(b - a for a, b in intervals)


def holes(covered: list[Interval], lo: float, hi: float) -> list[Interval]:
    """The parts of [lo, hi] that ``covered`` (merged, clipped) leaves out."""
    out: list[Interval] = []
    cursor = lo
    for a, b in covered:
        if a > cursor:
            out.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < hi:
        out.append((cursor, hi))
    return out


def dead_intervals(manifest: Manifest) -> list[Interval]:
    """When the agent was not running during the lesson, from its declared gaps."""
    return merge(
        [(g.start_s, g.end_s) for g in manifest.gaps if g.reason == "agent_not_running"],
        tolerance=0.0,
    )


def track_key(track: TrackEntry) -> str:
    """The file-name stem of a track within a classroom's recording."""
    return track.track if track.direction == "send" else f"{track.source_classroom}-{track.track}"


@dataclass(frozen=True)
class TrackCoverage:
    """Coverage of one track over the scheduled window."""

    key: str
    kind: str
    direction: str
    covered_s: float
    ratio: float
    gaps: list[dict[str, object]]


def _explain(key: str, hole: Interval, declared: list[GapEntry]) -> dict[str, object]:
    """The reason for a hole: the declared gap that overlaps it most."""
    best: GapEntry | None = None
    overlap = 0.0
    for gap in declared:
        if gap.track not in ("*", key):
            continue
        shared = min(hole[1], gap.end_s) - max(hole[0], gap.start_s)
        if shared > overlap:
            best, overlap = gap, shared
    return {
        "start_s": round(hole[0], 3),
        "end_s": round(hole[1], 3),
        "seconds": round(hole[1] - hole[0], 3),
        "reason": best.reason if best else "unknown",
        "detail": best.detail if best else "no media recorded and no reason reported",
    }


def coverage(manifest: Manifest, scheduled_s: float) -> dict[str, object]:
    """Per-track and overall coverage of the scheduled window [0, scheduled_s].

    The overall figure is that of the classroom's worst local camera (what "every second
    a camera saw" promises); tracks received from other classrooms are listed too.
    """
    window = max(scheduled_s, 0.001)
    dead = clip(dead_intervals(manifest), 0.0, window)
    tracks: list[TrackCoverage] = []
    for track in manifest.tracks:
        key = track_key(track)
        covered = clip(merge([(s.start_s, s.end_s) for s in track.segments]), 0.0, window)
        got = total(covered)
        tracks.append(
            TrackCoverage(
                key=key,
                kind=track.kind,
                direction=track.direction,
                covered_s=round(got, 3),
                ratio=round(got / window, 6),
                gaps=[
                    _explain(key, h, manifest.gaps)
                    for h in holes(covered, 0.0, window)
                    if h[1] - h[0] > JOIN_TOLERANCE_S
                ],
            )
        )
    own = [t for t in tracks if t.direction == "send" and t.kind == "video"]
    ratio = min((t.ratio for t in own), default=0.0)
    dead_s = total(dead)
    alive = max(window - dead_s, 0.001)
    covered_alive = min((t.covered_s for t in own), default=0.0)
    return {
        "scheduled_s": round(window, 3),
        "ratio": ratio,
        "dead_s": round(dead_s, 3),
        "ratio_while_running": round(min(covered_alive / alive, 1.0), 6),
        "tracks": [t.__dict__ for t in tracks],
    }
