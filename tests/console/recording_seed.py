"""Seeding real recordings for the console tests, the way the upload path catalogues them:
H.264 segment files in the controller's local storage, a verified row per segment, then
the classroom's manifest accepted (coverage computed, each track stitched)."""

from __future__ import annotations

import functools
import itertools
import json
import pathlib
import tempfile
from datetime import datetime
from typing import Literal

import av
import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Lesson
from controller.lessons.scheduling import schedule_lesson
from controller.recordings.intake import accept_manifest, record_segment
from controller.storage.backend import object_key
from controller.storage.local import LocalStorage, sha256_file
from protocols.manifest import GapEntry, Manifest, SegmentEntry, TrackEntry

FPS = 25
# (start_s, end_s) of each segment on the lesson's timeline; the hole between is a gap.
SEGMENTS: tuple[tuple[float, float], ...] = ((0.0, 2.0), (3.0, 6.0))
GAP_REASON: Literal["source_lost"] = "source_lost"
GAP_DETAIL = "camera unplugged"


@functools.cache
def _encoded(seconds: float) -> bytes:
    """A small H.264 MP4 of ``seconds`` (a key frame every half second, so it seeks)."""
    with tempfile.TemporaryDirectory(prefix="cb-seed-") as tmp:
        path = pathlib.Path(tmp) / "seg.mp4"
        with av.open(str(path), "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
            stream.options = {"g": str(FPS // 2), "preset": "ultrafast"}
            for i in range(round(seconds * FPS)):
                img = np.full((120, 160, 3), (i * 5) % 255, dtype=np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        return path.read_bytes()


def seed_recording(
    db: sessionmaker[Session],
    storage_dir: pathlib.Path,
    lesson_id: str,
    classroom_id: str,
    track: str = "teacher",
    segments: tuple[tuple[float, float], ...] = SEGMENTS,
) -> str:
    """Store and catalogue ``classroom_id``'s recording of a lesson; its playback URL."""
    storage = LocalStorage(storage_dir)
    entries = []
    with tempfile.TemporaryDirectory(prefix="cb-seed-") as tmp:
        for seq, (start, end) in enumerate(segments, 1):
            name = f"{track}-{seq:05d}.mp4"
            src = pathlib.Path(tmp) / name
            src.write_bytes(_encoded(end - start))
            digest, size = sha256_file(src), src.stat().st_size
            key = object_key("lessons", lesson_id, classroom_id, track, name)
            storage.store_file(src, key)
            with db() as s:
                record_segment(s, lesson_id, classroom_id, track, name, key, digest, size)
            entries.append(
                SegmentEntry(
                    name=name,
                    seq=seq,
                    start_s=start,
                    end_s=end,
                    frames=round((end - start) * FPS),
                    bytes=size,
                    sha256=digest,
                )
            )
    gaps = [
        GapEntry(track=track, start_s=a[1], end_s=b[0], reason=GAP_REASON, detail=GAP_DETAIL)
        for a, b in itertools.pairwise(segments)
        if b[0] > a[1]
    ]
    manifest = Manifest(
        lesson_id=lesson_id,
        classroom_id=classroom_id,
        started_at=0,
        ended_at=segments[-1][1],
        tracks=[
            TrackEntry(
                track=track,
                kind="video",
                direction="send",
                source_classroom=classroom_id,
                segments=entries,
            )
        ],
        gaps=gaps,
    )
    raw = json.dumps(manifest.model_dump(mode="json")).encode()
    accept_manifest(db, storage, raw, lesson_id, classroom_id)
    return f"/api/v1/recordings/{lesson_id}/{classroom_id}/{track}.mp4"


def seed_lesson(
    db: sessionmaker[Session],
    lead: str,
    receivers: list[str],
    start: datetime,
    end: datetime,
    *,
    kind: str = "synchronous",
    subject: str = "",
    teacher: str | None = None,
    title: str = "",
) -> str:
    """Schedule a lesson through the timetable's rules; its id."""
    with db() as s:
        lesson: Lesson = schedule_lesson(
            s, lead, receivers, start, end, title, kind, teacher, subject
        )
        return lesson.id
