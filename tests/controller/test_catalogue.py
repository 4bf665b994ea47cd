"""Coverage from manifests: merged segments, clipped to the schedule, gaps with reasons."""

from __future__ import annotations

from controller.recordings.catalogue import coverage, holes, merge
from protocols.manifest import GapEntry, Manifest, SegmentEntry, TrackEntry


def _seg(seq: int, start: float, end: float) -> SegmentEntry:
    return SegmentEntry(
        name=f"t-{seq:05d}.mp4",
        seq=seq,
        start_s=start,
        end_s=end,
        frames=1,
        bytes=1,
        sha256="0" * 64,
    )


def _manifest(segments: list[SegmentEntry], gaps: list[GapEntry] | None = None) -> Manifest:
    return Manifest(
        lesson_id="L",
        classroom_id="a",
        started_at=0,
        ended_at=60,
        tracks=[
            TrackEntry(
                track="teacher",
                kind="video",
                direction="send",
                source_classroom="a",
                segments=segments,
            ),
            TrackEntry(
                track="student",
                kind="video",
                direction="recv",
                source_classroom="b",
                segments=[_seg(1, 0, 30)],
            ),
        ],
        gaps=gaps or [],
    )


def test_merge_and_holes() -> None:
    assert merge([(0, 4), (4.05, 8), (9, 10)]) == [(0, 8), (9, 10)]
    assert holes([(1, 2), (3, 4)], 0, 5) == [(0, 1), (2, 3), (4, 5)]


def test_full_recording_with_preroll_and_overrun_is_100_percent() -> None:
    cov = coverage(_manifest([_seg(1, -2, 20), _seg(2, 20, 41)]), 40.0)
    assert cov["ratio"] == 1.0 and cov["dead_s"] == 0.0
    [own, received] = cov["tracks"]  # type: ignore[misc]
    assert own["gaps"] == [] and received["ratio"] == 0.75


def test_kill_gap_is_explained_and_excluded_while_running() -> None:
    gap = GapEntry(track="*", start_s=14.9, end_s=17.5, reason="agent_not_running", detail="killed")
    cov = coverage(_manifest([_seg(1, 0, 14.9), _seg(2, 17.5, 40)], [gap]), 40.0)
    assert round(cov["ratio"], 4) == round(37.4 / 40, 4)  # type: ignore[arg-type]
    assert cov["dead_s"] == 2.6 and cov["ratio_while_running"] == 1.0
    [hole] = cov["tracks"][0]["gaps"]  # type: ignore[index]
    assert hole["reason"] == "agent_not_running" and hole["seconds"] == 2.6


def test_unexplained_gap_says_so() -> None:
    cov = coverage(_manifest([_seg(1, 0, 10), _seg(2, 12, 40)]), 40.0)
    [hole] = cov["tracks"][0]["gaps"]  # type: ignore[index]
    assert hole["reason"] == "unknown" and hole["start_s"] == 10.0
