"""Records every track of a lesson — the ones sent and the ones received — as segments.

Writing happens on one thread of its own, so muxing and fsync never stall the event loop
or the media path.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.recording.manifest import write_manifest
from edge_agent.recording.runs import gaps_between_runs, read_runs
from edge_agent.recording.salvage import salvage_directory
from edge_agent.recording.segments import SegmentInfo, SegmentWriter, read_segment_infos
from edge_agent.recording.timeline import TrackClock
from protocols.manifest import Manifest, SegmentEntry, TrackEntry
from protocols.media.encoded_frame import EncodedFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackSpec:
    """Which track a writer records."""

    track: str
    kind: str
    direction: str
    source_classroom: str
    width: int = 0
    height: int = 0
    mux_into: str | None = None  # key of the video track whose files carry this audio
    fps: int = 0

    @property
    def key(self) -> str:
        """Unique file-name stem of the track within the lesson."""
        return self.track if self.direction == "send" else f"{self.source_classroom}-{self.track}"


class LessonRecorder:
    """Segments for every track of one lesson, plus its manifest."""

    def __init__(
        self,
        directory: pathlib.Path,
        lesson_id: str,
        classroom_id: str,
        segment_seconds: float = 10.0,
        epoch: float | None = None,
        scheduled_s: float = 0.0,
        now: Callable[[], float] = time.time,
        on_segment: Callable[[str, SegmentInfo], None] | None = None,
    ) -> None:
        self.directory = directory
        # The controller's clock (the agent's own, corrected by the measured offset).
        self._now = now
        self._on_segment = on_segment
        self.scheduled_s = scheduled_s
        # Timestamps in recordings count from the lesson's scheduled start.
        self.epoch = now() if epoch is None else epoch
        self._clocks: dict[str, TrackClock] = {}
        self.lesson_id = lesson_id
        self.classroom_id = classroom_id
        self._segment_seconds = segment_seconds
        self._specs: dict[str, TrackSpec] = {}
        self._writers: dict[str, SegmentWriter] = {}
        self._queue: queue.Queue[tuple[str, EncodedFrame] | None] = queue.Queue(maxsize=2000)
        self._thread: threading.Thread | None = None
        self.recording = False
        self.started_at = 0.0
        self.ended_at = 0.0
        self.dropped = 0
        self.errors = 0

    def add_track(self, spec: TrackSpec) -> None:
        """Declare a track before or during recording."""
        self._specs[spec.key] = spec

    def start(self) -> None:
        """Begin recording; frames offered before this are ignored."""
        if self.recording:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.started_at = self._now()
        # A killed earlier run of this lesson left open segments: close them first.
        for spec_key in self._specs:
            for info in salvage_directory(self.directory / spec_key):
                if self._on_segment is not None:
                    self._on_segment(spec_key, info)
        self._log_run({"started_s": self.started_at - self.epoch, "pid": os.getpid()})
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()
        self.recording = True

    def discontinuity(self, key: str) -> None:
        """The track's next frame starts a new run (reconnected, source restarted)."""
        clock = self._clocks.get(key)
        if clock is not None:
            clock.reconnected()

    def offer(self, key: str, frame: EncodedFrame) -> None:
        """Queue a frame for its track (non-blocking; drops and counts when overwhelmed)."""
        if not self.recording:
            return
        clock = self._clocks.get(key)
        if clock is None:
            clock = self._clocks[key] = TrackClock(self.epoch)
        pts = clock.pts(frame.pts, frame.time_base, self._now())
        spec = self._specs.get(key)
        if spec is not None and spec.mux_into in self._specs:
            key = spec.mux_into
        frame = EncodedFrame(
            frame.kind,
            frame.data,
            pts,
            frame.time_base,
            frame.keyframe,
            frame.capture_ms,
            frame.meta,
        )
        try:
            self._queue.put_nowait((key, frame))
        except queue.Full:
            self.dropped += 1

    def stop(self) -> pathlib.Path:
        """Close every segment and write the manifest; returns its path."""
        if self.recording:
            self.recording = False
            self.ended_at = self._now()
            self._queue.put(None)
            if self._thread is not None:
                self._thread.join(timeout=30)
            self._log_run({"ended_s": self.ended_at - self.epoch, "pid": os.getpid()})
        tracks = []
        for key, spec in self._specs.items():
            if spec.mux_into in self._specs:
                continue  # recorded inside its video track
            # Segments on disk, including those of an earlier run of this agent that was
            # killed mid-lesson: each closed segment left a sidecar with its figures.
            segments = read_segment_infos(self.directory / key)
            if not segments:
                continue
            tracks.append(
                TrackEntry(
                    track=spec.track,
                    kind=spec.kind,  # type: ignore[arg-type]
                    direction=spec.direction,  # type: ignore[arg-type]
                    source_classroom=spec.source_classroom,
                    muxed=self._muxed_into(key),
                    segments=[
                        SegmentEntry(
                            name=s.path.name,
                            seq=s.seq,
                            start_s=s.first_pts_s,
                            end_s=s.last_pts_s,
                            frames=s.frames,
                            bytes=s.bytes,
                            sha256=s.sha256,
                        )
                        for s in segments
                    ],
                )
            )
        runs = read_runs(self.directory)
        ends = [s.end_s for t in tracks for s in t.segments]
        manifest = Manifest(
            lesson_id=self.lesson_id,
            classroom_id=self.classroom_id,
            started_at=self.started_at,
            ended_at=self.ended_at,
            tracks=tracks,
            epoch=self.epoch,
            scheduled_s=self.scheduled_s,
            runs=runs,
            gaps=gaps_between_runs(runs, ends),
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        return write_manifest(self.directory, manifest)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            key, frame = item
            try:
                self._writer(key).write(frame)
            except Exception:
                self.errors += 1
                log.exception("recording track %s failed on a frame", key)
        for key, writer in self._writers.items():
            try:
                writer.close()
            except Exception:
                self.errors += 1
                log.exception("closing track %s failed", key)

    def _log_run(self, entry: dict[str, object]) -> None:
        """Append to the lesson's run log, durably (a kill right after still keeps it)."""
        with open(self.directory / "runs.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _closed(self, key: str) -> Callable[[SegmentInfo], None] | None:
        callback = self._on_segment
        if callback is None:
            return None
        return lambda info: callback(key, info)

    def _muxed_into(self, key: str) -> list[str]:
        return [k for k, s in self._specs.items() if s.mux_into == key]

    def _writer(self, key: str) -> SegmentWriter:
        writer = self._writers.get(key)
        if writer is None:
            spec = self._specs[key]
            writer = SegmentWriter(
                self.directory / key,
                key,
                spec.kind,
                segment_seconds=self._segment_seconds,
                width=spec.width,
                height=spec.height,
                with_audio=bool(self._muxed_into(key)),
                fps=spec.fps,
                on_closed=self._closed(key),
            )
            self._writers[key] = writer
        return writer
