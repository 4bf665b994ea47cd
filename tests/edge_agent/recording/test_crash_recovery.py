"""What a killed agent leaves behind is recovered: the open segment up to its last
fragment, and the seconds it was not running listed as a gap."""

from __future__ import annotations

import json
import pathlib
import shutil

from edge_agent.devices.synthetic import SyntheticCamera
from edge_agent.media.encoders import VideoEncoder
from edge_agent.recording.runs import gaps_between_runs, read_runs
from edge_agent.recording.salvage import salvage_directory, sound_prefix
from edge_agent.recording.segments import SegmentWriter, read_segment_infos, sha256_file
from protocols.manifest import RunEntry
from protocols.media.encoded_frame import EncodedFrame


def _video(seconds: float) -> list[EncodedFrame]:
    camera = SyntheticCamera(320, 240, 30, "t")
    encoder = VideoEncoder(320, 240, 30, 300_000, preset="ultrafast", gop_seconds=2)
    frames: list[EncodedFrame] = []
    for i in range(int(seconds * 30)):
        frames += encoder.encode(camera.frame(i, 0), 0)
    return [
        EncodedFrame(f.kind, f.data, f.pts + 5 * 90000, f.time_base, f.keyframe) for f in frames
    ]


def _killed_copy(tmp_path: pathlib.Path, seconds: float) -> pathlib.Path:
    """Write ``seconds`` into an open segment and copy the directory as a kill would
    leave it (the writer is never closed)."""
    live = tmp_path / "live"
    writer = SegmentWriter(live, "teacher", "video", segment_seconds=60, width=320, height=240)
    for frame in _video(seconds):
        writer.write(frame)
    dead = tmp_path / "dead"
    shutil.copytree(live, dead)
    return dead


def test_open_segment_is_salvaged_up_to_its_last_fragment(tmp_path: pathlib.Path) -> None:
    dead = _killed_copy(tmp_path, 3.0)
    parts = list(dead.glob("*.mp4.part"))
    assert len(parts) == 1 and (dead / (parts[0].name + ".json")).exists()
    [info] = salvage_directory(dead)
    assert not list(dead.glob("*.part")), "the open segment should be closed"
    # Fragments are flushed every 0.1 s: at most a fragment or so is lost.
    assert 2.7 <= info.last_pts_s - info.first_pts_s <= 3.05, info
    assert info.first_pts_s == 5.0  # its place on the lesson timeline survives
    assert info.sha256 == sha256_file(info.path)
    assert read_segment_infos(dead) == [info]  # with a sidecar, like a clean close


def test_a_torn_tail_is_cut_at_a_box_boundary(tmp_path: pathlib.Path) -> None:
    dead = _killed_copy(tmp_path, 2.0)
    part = next(dead.glob("*.mp4.part"))
    data = part.read_bytes()
    keep = sound_prefix(data)
    part.write_bytes(data[: keep + 37])  # a half-written box after the last fragment
    assert sound_prefix(part.read_bytes()) == keep
    [info] = salvage_directory(dead)
    assert info.frames > 0


def test_nothing_sound_is_kept_aside_not_deleted(tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "t"
    directory.mkdir()
    (directory / "teacher-00001.mp4.part").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"x" * 10)
    (directory / "teacher-00001.mp4.part.json").write_text(
        json.dumps({"track": "teacher", "kind": "video", "seq": 1, "first_pts_s": 0.0})
    )
    assert salvage_directory(directory) == []
    assert (directory / "teacher-00001.mp4.part.unrecoverable").exists()


def test_runs_and_the_gap_between_them(tmp_path: pathlib.Path) -> None:
    (tmp_path / "runs.jsonl").write_text(
        '{"started_s": -0.2, "pid": 10}\n'  # killed: no end line
        '{"started_s": 17.5, "pid": 11}\n'
        '{"ended_s": 30.0, "pid": 11}\n'
        '{"started_s": 31.0, "pid": 12}\n'
        '{"ended_s": 40.0, "pid": 12}\n'
        '{"started_s": 4'  # torn line from a kill mid-write
    )
    runs = read_runs(tmp_path)
    assert [r.ended_s for r in runs] == [None, 30.0, 40.0]
    gaps = gaps_between_runs(runs, segment_ends=[4.0, 8.0, 14.9, 30.0])
    assert [(g.start_s, g.end_s, g.reason) for g in gaps] == [
        (14.9, 17.5, "agent_not_running"),
        (30.0, 31.0, "agent_not_running"),
    ]
    assert "killed" in gaps[0].detail and "stopped" in gaps[1].detail


def test_no_gap_when_runs_touch() -> None:
    runs = [RunEntry(started_s=0.0, ended_s=10.0), RunEntry(started_s=10.0)]
    assert gaps_between_runs(runs, [10.0]) == []


def test_an_evicted_segment_stays_in_the_lesson(tmp_path: pathlib.Path) -> None:
    """Eviction deletes a verified segment's bytes, not its place in the manifest."""
    writer = SegmentWriter(
        tmp_path / "t", "teacher", "video", segment_seconds=1, width=320, height=240
    )
    for frame in _video(4.5):
        writer.write(frame)
    closed = writer.close()
    assert len(closed) >= 3
    closed[0].path.unlink()  # evicted after storage confirmed it
    (tmp_path / "t" / "teacher-99999.mp4.json").write_text("{torn")  # a bad sidecar
    assert [i.seq for i in read_segment_infos(tmp_path / "t")] == [i.seq for i in closed]
