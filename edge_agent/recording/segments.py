"""Segmented MP4 recording of one track.

Each segment is a fragmented MP4 written as ``<track>-<seq>.mp4.part``; when it closes it
is flushed, fsync'd and atomically renamed, and only then counts. A crash therefore never
corrupts an earlier segment, and the fragment in flight stays readable up to its last
fragment. Video segments start on a keyframe.
"""

from __future__ import annotations

import fractions
import hashlib
import json
import logging
import os
import pathlib
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import av

from edge_agent.recording.errors import RecordingError
from protocols.media.encoded_frame import EncodedFrame
from protocols.media.h264 import START_CODE, parameter_sets

log = logging.getLogger(__name__)

# A fragment every keyframe and at least every 0.1 s, each flushed to the file as it is
# written: a killed agent leaves a .part that is whole up to its last fragment, which
# salvage.py turns back into a segment.
FRAGMENTED = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    "frag_duration": "100000",
    "flush_packets": "1",
}
OPUS_PRE_SKIP = 312
# A jump in a video track's timestamps longer than this is an outage of its source.
MAX_JUMP_S = 1.0


@dataclass(frozen=True)
class SegmentInfo:
    """A closed, durable segment."""

    path: pathlib.Path
    track: str
    kind: str
    seq: int
    first_pts_s: float
    last_pts_s: float
    frames: int
    bytes: int
    sha256: str


def opus_head(channels: int = 1, rate: int = 48000) -> bytes:
    """The OpusHead identification header the MP4 muxer needs as extradata."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, OPUS_PRE_SKIP, rate, 0, 0)


class SegmentWriter:
    """Writes one track's encoded frames into consecutive durable segments."""

    def __init__(
        self,
        directory: pathlib.Path,
        track: str,
        kind: str,
        segment_seconds: float = 10.0,
        width: int = 0,
        height: int = 0,
        with_audio: bool = False,
        fps: int = 0,
        on_closed: Callable[[SegmentInfo], None] | None = None,
    ) -> None:
        self.fps = fps
        self._on_closed = on_closed
        self.directory = directory
        # A video track may carry its classroom's microphone as a second (Opus) stream,
        # so the recording plays with sound.
        self.with_audio = with_audio and kind == "video"
        self._audio_stream: Any = None
        self._audio_last_pts: int | None = None
        self.audio_frames = 0
        self.dropped_audio = 0
        # A run after a crash continues the numbering, so no earlier file (closed, or a
        # .part the crash left behind) is ever overwritten.
        self.track = track
        self.kind = kind
        self.segment_seconds = segment_seconds
        self.width, self.height = width, height
        self._segments: list[SegmentInfo] = []
        self._container: Any = None
        self._stream: Any = None
        self._part: pathlib.Path | None = None
        self._seq = highest_seq(directory, track)
        self._first_pts: int | None = None
        self._last_pts: int | None = None
        self._last_duration = 0
        self._time_base = fractions.Fraction(1, 90000)
        self._frames = 0
        self._extradata: bytes | None = None
        self.dropped_before_keyframe = 0
        self.dropped_damaged = 0
        self.adjusted_timestamps = 0

    @property
    def segments(self) -> list[SegmentInfo]:
        """Closed segments so far."""
        return list(self._segments)

    def write(self, frame: EncodedFrame) -> None:
        """Append a frame, starting a new segment on a keyframe when one is due."""
        if frame.kind == "audio" and self.kind == "video":
            self._mux_audio(frame)
            return
        if self.kind == "video":
            if START_CODE not in frame.data:
                # A received frame whose first packets were lost carries no NAL start:
                # the muxer would store it as an empty sample, which makes the whole
                # segment unreadable. Leave it out; the decoder conceals one picture.
                self.dropped_damaged += 1
                if self.dropped_damaged % 100 == 1:
                    log.warning(
                        "%s: left out a video frame with no NAL start code (lost in the "
                        "network); %d so far",
                        self.track,
                        self.dropped_damaged,
                    )
                return
            if frame.keyframe:
                self._extradata = parameter_sets(frame.data) or self._extradata
            if self._container is not None and self._broken(frame):
                # The source was away (camera unplugged): end the segment at its last
                # frame so the outage shows as a gap, and restart on the next keyframe.
                self._close_segment()
            if self._container is None and (not frame.keyframe or self._extradata is None):
                self.dropped_before_keyframe += 1
                return
            if (
                self._container is not None
                and frame.keyframe
                and self._elapsed(frame) >= self.segment_seconds
            ):
                self._close_segment()
        elif self._container is not None and self._elapsed(frame) >= self.segment_seconds:
            self._close_segment()
        if self._container is None:
            self._open_segment(frame)
        self._mux(frame)

    def _broken(self, frame: EncodedFrame) -> bool:
        """Whether a frame comes after a break in the source longer than ``MAX_JUMP_S``."""
        if self._last_pts is None:
            return False
        return float((frame.pts - self._last_pts) * frame.time_base) > MAX_JUMP_S

    def _elapsed(self, frame: EncodedFrame) -> float:
        assert self._first_pts is not None
        return float((frame.pts - self._first_pts) * frame.time_base)

    def _open_segment(self, frame: EncodedFrame) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        self._part = self.directory / f"{self.track}-{self._seq:05d}.mp4.part"
        self._time_base = frame.time_base
        stream: Any
        try:
            container = av.open(str(self._part), "w", format="mp4", options=FRAGMENTED)
            if self.kind == "video":
                stream = container.add_stream("h264", rate=self.fps or 30)
                stream.width = self.width or 1280
                stream.height = self.height or 720
                stream.codec_context.extradata = self._extradata
                if self.with_audio:
                    audio = container.add_stream("libopus", rate=48000)
                    audio.codec_context.extradata = opus_head()
                    audio.time_base = fractions.Fraction(1, 48000)
                    self._audio_stream = audio
            else:
                stream = container.add_stream("libopus", rate=48000)
                stream.codec_context.extradata = opus_head()
            stream.time_base = frame.time_base
        except (av.FFmpegError, OSError) as err:
            raise RecordingError(f"{self._part}: cannot start a segment: {err}") from err
        self._container, self._stream = container, stream
        self._first_pts = frame.pts
        self._frames = 0
        _write_json(
            self._part.with_name(self._part.name + ".json"),
            {
                "track": self.track,
                "kind": self.kind,
                "seq": self._seq,
                "first_pts_s": float(frame.pts * frame.time_base),
            },
        )

    def _mux(self, frame: EncodedFrame) -> None:
        assert self._container is not None and self._stream is not None
        pts = frame.pts
        if self._last_pts is not None and pts <= self._last_pts:
            # Never let time run backwards in a file: nudge and count.
            pts = self._last_pts + 1
            self.adjusted_timestamps += 1
        packet = av.Packet(frame.data)
        packet.stream = self._stream
        # Each file starts its video at 0; its place on the lesson timeline is in the
        # manifest (start_s). Nothing is left for the muxer to shift.
        assert self._first_pts is not None
        packet.pts = packet.dts = pts - self._first_pts
        packet.time_base = frame.time_base
        packet.is_keyframe = frame.keyframe
        if self._last_pts is not None:
            self._last_duration = pts - self._last_pts
        try:
            self._container.mux(packet)
        except (av.FFmpegError, OSError) as err:
            raise RecordingError(f"{self._part}: write failed: {err}") from err
        self._last_pts = pts
        self._frames += 1

    def _mux_audio(self, frame: EncodedFrame) -> None:
        if self._container is None or self._audio_stream is None:
            self.dropped_audio += 1  # no segment yet: video starts it on a keyframe
            return
        pts = frame.pts
        if self._audio_last_pts is not None and pts <= self._audio_last_pts:
            pts = self._audio_last_pts + 1
            self.adjusted_timestamps += 1
        assert self._first_pts is not None
        origin = round(self._first_pts * self._time_base / frame.time_base)
        if pts < origin:
            self.dropped_audio += 1  # belongs before this segment's first picture
            return
        packet = av.Packet(frame.data)
        packet.stream = self._audio_stream
        packet.pts = packet.dts = pts - origin
        packet.time_base = frame.time_base
        try:
            self._container.mux(packet)
        except (av.FFmpegError, OSError) as err:
            raise RecordingError(f"{self._part}: write failed: {err}") from err
        self._audio_last_pts = pts
        self.audio_frames += 1

    def _close_segment(self) -> None:
        container, part = self._container, self._part
        if container is None or part is None:
            return
        self._container = self._stream = self._audio_stream = None
        try:
            container.close()
            with open(part, "rb+") as fh:
                os.fsync(fh.fileno())
            final = part.with_name(part.name.removesuffix(".part"))
            os.replace(part, final)
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except (av.FFmpegError, OSError) as err:
            raise RecordingError(f"{part}: cannot close the segment: {err}") from err
        assert self._first_pts is not None and self._last_pts is not None
        tb = self._time_base
        info = SegmentInfo(
            path=final,
            track=self.track,
            kind=self.kind,
            seq=self._seq,
            first_pts_s=float(self._first_pts * tb),
            last_pts_s=float((self._last_pts + self._last_duration) * tb),
            frames=self._frames,
            bytes=final.stat().st_size,
            sha256=sha256_file(final),
        )
        write_sidecar(info)
        part.with_name(part.name + ".json").unlink(missing_ok=True)
        self._segments.append(info)
        if self._on_closed is not None:
            self._on_closed(info)

    def close(self) -> list[SegmentInfo]:
        """Close the open segment; returns every segment."""
        self._close_segment()
        return self.segments


def sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def highest_seq(directory: pathlib.Path, track: str) -> int:
    """The highest segment number already used in ``directory`` (0 if none)."""
    highest = 0
    if directory.exists():
        for path in directory.glob(f"{track}-*.mp4*"):
            digits = path.name[len(track) + 1 :].split(".", 1)[0]
            if digits.isdigit():
                highest = max(highest, int(digits))
    return highest


def write_sidecar(info: SegmentInfo) -> None:
    """Record a closed segment's figures next to it, crash-safe."""
    _write_json(
        info.path.with_name(info.path.name + ".json"), {**asdict(info), "path": info.path.name}
    )


def _write_json(path: pathlib.Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_segment_infos(directory: pathlib.Path) -> list[SegmentInfo]:
    """Every closed segment in a track directory, in order, from its sidecar.

    The sidecar outlives its segment: a segment evicted to make room (only ever after
    storage verified it) is still part of the lesson and stays in its manifest.
    """
    infos: list[SegmentInfo] = []
    if not directory.exists():
        return infos
    for sidecar in directory.glob("*.mp4.json"):
        try:
            doc = json.loads(sidecar.read_text(encoding="utf-8"))
            path = directory / doc.pop("path")
            infos.append(SegmentInfo(path=path, **doc))
        except (OSError, ValueError, TypeError, KeyError) as err:
            log.error("%s: unreadable segment sidecar skipped (%s)", sidecar, err)
    return sorted(infos, key=lambda i: i.seq)
