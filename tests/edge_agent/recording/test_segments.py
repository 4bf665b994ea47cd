"""Segments are durable, start on keyframes, and stitch back into one clean file."""

from __future__ import annotations

import itertools
import json
import pathlib
import subprocess

import pytest

from controller.storage.errors import StitchError
from controller.storage.stitch import stitch
from edge_agent.devices.synthetic import SyntheticCamera, SyntheticMicrophone
from edge_agent.media.encoders import AudioEncoder, VideoEncoder
from edge_agent.recording.lesson_recorder import LessonRecorder, TrackSpec
from edge_agent.recording.manifest import read_manifest
from edge_agent.recording.segments import SegmentWriter
from protocols.media.encoded_frame import EncodedFrame


def _ffprobe(path: pathlib.Path) -> dict[str, object]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,nb_read_packets:format=duration",
            "-count_packets",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stderr == ""
    doc = json.loads(out.stdout)
    return {
        "codec": doc["streams"][0]["codec_name"],
        "duration": float(doc["format"]["duration"]),
        "packets": int(doc["streams"][0]["nb_read_packets"]),
    }


def _video(seconds: float, start: int = 0) -> list[EncodedFrame]:
    camera = SyntheticCamera(320, 240, 30, "t")
    encoder = VideoEncoder(320, 240, 30, 300_000, preset="ultrafast", gop_seconds=1)
    frames: list[EncodedFrame] = []
    for i in range(start, start + int(seconds * 30)):
        frames += encoder.encode(camera.frame(i, 0), 0)
    return frames


def test_video_segments_are_keyframe_aligned_and_stitch(tmp_path: pathlib.Path) -> None:
    writer = SegmentWriter(
        tmp_path / "v", "teacher", "video", segment_seconds=4, width=320, height=240
    )
    frames = _video(10)
    writer.write(frames[5])  # not a keyframe: dropped, recording waits for one
    for frame in frames:
        writer.write(frame)
    segments = writer.close()
    assert [s.seq for s in segments] == [1, 2, 3]
    assert writer.dropped_before_keyframe == 1
    assert not list((tmp_path / "v").glob("*.part"))
    assert segments[-1].last_pts_s == pytest.approx(10.0, abs=0.05)
    for seg in segments:
        assert _ffprobe(seg.path)["codec"] == "h264"
    result = stitch(
        [s.path for s in segments], tmp_path / "teacher.mp4", [s.first_pts_s for s in segments]
    )
    probe = _ffprobe(result.path)
    assert probe["codec"] == "h264" and probe["packets"] == 300
    assert probe["duration"] == pytest.approx(10.0, abs=0.1)


def test_stitch_keeps_a_gap_where_the_recording_stopped(tmp_path: pathlib.Path) -> None:
    first = SegmentWriter(tmp_path / "a", "t", "video", 100, 320, 240)
    for f in _video(3):
        first.write(f)
    second = SegmentWriter(tmp_path / "b", "t", "video", 100, 320, 240)
    for f in _video(3, start=150):  # resumes 5 s into the lesson
        second.write(f)
    segs = first.close() + second.close()
    result = stitch([s.path for s in segs], tmp_path / "out.mp4", [0.0, 5.0])
    assert result.duration_s == pytest.approx(8.0, abs=0.1)


def test_audio_segments_are_opus(tmp_path: pathlib.Path) -> None:
    mic, encoder = SyntheticMicrophone(), AudioEncoder()
    writer = SegmentWriter(tmp_path, "mic", "audio", segment_seconds=2)
    for i in range(250):
        for frame in encoder.encode(mic.frame(i), 0):
            writer.write(frame)
    segments = writer.close()
    assert len(segments) == 3
    result = stitch([s.path for s in segments], tmp_path / "mic.mp4")
    assert _ffprobe(result.path)["codec"] == "opus"
    assert result.duration_s == pytest.approx(5.0, abs=0.05)


def test_stitch_refuses_bad_input(tmp_path: pathlib.Path) -> None:
    with pytest.raises(StitchError, match="no segments"):
        stitch([], tmp_path / "x.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not an mp4")
    with pytest.raises(StitchError, match=r"junk\.mp4"):
        stitch([junk], tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4.part").exists()


def test_lesson_recorder_writes_a_manifest(tmp_path: pathlib.Path) -> None:
    recorder = LessonRecorder(tmp_path / "L1", "L1", "city-101", segment_seconds=2)
    recorder.add_track(TrackSpec("teacher", "video", "send", "city-101", 320, 240))
    recorder.offer("teacher", _video(1)[0])  # before start: ignored
    recorder.start()
    for frame in _video(5):
        recorder.offer("teacher", frame)
    manifest = read_manifest(recorder.stop())
    assert manifest.lesson_id == "L1" and manifest.classroom_id == "city-101"
    (track,) = manifest.tracks
    assert len(track.segments) == 3 and all(len(s.sha256) == 64 for s in track.segments)
    assert recorder.errors == 0


def test_camera_with_its_microphone_stitches_in_sync(tmp_path: pathlib.Path) -> None:
    camera = SyntheticCamera(320, 240, 30, "t")
    video = VideoEncoder(320, 240, 30, 300_000, preset="ultrafast", gop_seconds=1)
    mic, audio = SyntheticMicrophone(), AudioEncoder()
    writer = SegmentWriter(tmp_path, "teacher", "video", 2, 320, 240, with_audio=True)
    # the lesson timeline: video at 90 kHz and audio at 48 kHz, both from 0.5 s
    k = 0
    for i in range(150):  # 5 s
        for f in video.encode(camera.frame(i, 0), 0):
            writer.write(EncodedFrame("video", f.data, 45000 + f.pts, f.time_base, f.keyframe))
        while k * 960 < (i + 1) * 1600:  # audio up to the end of this video frame
            for a in audio.encode(mic.frame(k), 0):
                writer.write(EncodedFrame("audio", a.data, 24000 + a.pts, a.time_base, True))
            k += 1
    segments = writer.close()
    assert len(segments) == 3 and writer.audio_frames > 200
    out = stitch([s.path for s in segments], tmp_path / "t.mp4", [s.first_pts_s for s in segments])
    dts = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=dts",
            "-of",
            "csv=p=0",
            str(out.path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    steps = {int(b) - int(a) for a, b in itertools.pairwise(dts)}
    assert steps == {3000}, steps  # no frame squeezed or stretched at segment joins
    probe = json.loads(
        subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,duration",
                "-of",
                "json",
                str(out.path),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    durations = {s["codec_name"]: float(s["duration"]) for s in probe["streams"]}
    assert durations["h264"] == pytest.approx(5.0, abs=0.05)
    assert durations["opus"] == pytest.approx(5.0, abs=0.1)


def test_a_frame_that_lost_its_start_in_the_network_is_left_out(tmp_path: pathlib.Path) -> None:
    """A received frame whose first packets were lost has no start code: muxed as it is, it
    becomes an empty sample and the whole segment is unreadable (a lesson once stayed
    un-uploaded for ever on it). It is left out and counted; the segment plays."""
    writer = SegmentWriter(tmp_path / "v", "village-panel", "video", segment_seconds=10.0)
    frames = _video(2)
    torn = frames[7]
    assert not torn.keyframe
    tail = torn.data[torn.data.rindex(b"\x00\x00\x01") + 11 :]  # the last NAL's tail only
    damaged = EncodedFrame("video", tail, torn.pts, torn.time_base, False)
    empty = EncodedFrame("video", b"", frames[8].pts, torn.time_base, False)
    for frame in [*frames[:7], damaged, empty, *frames[9:]]:
        writer.write(frame)
    [segment] = writer.close()
    assert writer.dropped_damaged == 2
    assert _ffprobe(segment.path)["packets"] == len(frames) - 2
    result = stitch([segment.path], tmp_path / "panel.mp4", [segment.first_pts_s])
    assert result.frames == len(frames) - 2
