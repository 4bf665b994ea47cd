"""Cutting a clip: a remux of the key-frame span around what was asked, video and audio
with their codecs unchanged, in the sandboxed child; a damaged source fails clearly."""

from __future__ import annotations

import pathlib

import av
import numpy as np
import pytest

from controller.common.errors import InvalidRequest
from controller.library.clip import ClipError, check_span, cut_sandboxed

FPS = 25
GOP_S = 1.0
RATE = 48000


def _recording(path: pathlib.Path, seconds: int) -> None:
    """An H.264 + AAC MP4 with a key frame every second."""
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.options = {"g": str(FPS), "keyint_min": str(FPS), "preset": "ultrafast"}
        audio = out.add_stream("aac", rate=RATE)
        samples = 0
        for i in range(seconds * FPS):
            img = np.full((120, 160, 3), (i * 7) % 255, dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
            while samples < (i + 1) * RATE // FPS:
                tone = np.sin(np.arange(samples, samples + 1024) / 20).astype(np.float32)
                frame = av.AudioFrame.from_ndarray(tone[None, :], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = RATE, samples
                samples += 1024
                for packet in audio.encode(frame):
                    out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode():
                out.mux(packet)


def _streams(path: pathlib.Path) -> dict[str, float]:
    with av.open(str(path)) as src:
        return {
            s.codec_context.name: float((s.duration or 0) * (s.time_base or 0)) for s in src.streams
        }


def test_a_clip_keeps_its_codecs_and_is_within_a_gop_of_the_span(
    tmp_path: pathlib.Path,
) -> None:
    source = tmp_path / "lesson.mp4"
    _recording(source, 8)
    result = cut_sandboxed(source, tmp_path / "clip.mp4", 2.3, 5.6)
    assert result.codec == "h264" and result.path.exists()
    assert 2.3 - GOP_S < result.start_s <= 2.3 and 5.6 <= result.end_s < 5.6 + GOP_S
    streams = _streams(result.path)
    assert set(streams) == {"h264", "aac"}
    assert abs(streams["h264"] - 3.3) <= GOP_S
    assert abs(streams["aac"] - streams["h264"]) < 0.2
    assert not (tmp_path / "clip.mp4.part").exists()


def test_a_damaged_recording_fails_naming_it(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "lesson.mp4"
    source.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\xff" * 5000)
    with pytest.raises(ClipError, match=r"lesson\.mp4"):
        cut_sandboxed(source, tmp_path / "clip.mp4", 0.0, 2.0)
    assert not (tmp_path / "clip.mp4").exists()


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        (0.0, 300.5, "at most 300 s"),
        (0.0, 300.0, ""),
        (700.0, 710.0, "past the end"),
        (5.0, 5.0, "must be after"),
    ],
)
def test_spans_are_checked_against_the_recording(start: float, end: float, words: str) -> None:
    if not words:
        check_span(start, end, 600.0)
        return
    with pytest.raises(InvalidRequest, match=words):
        check_span(start, end, 600.0)
