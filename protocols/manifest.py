"""The recording manifest an agent uploads with a lesson: tracks, segments, checksums."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

MANIFEST_NAME = "manifest.json"


class SegmentEntry(BaseModel):
    """One closed segment file."""

    model_config = ConfigDict(extra="forbid")
    name: str
    seq: int
    start_s: float
    end_s: float
    frames: int
    bytes: int
    sha256: str


class TrackEntry(BaseModel):
    """One recorded track and its segments."""

    model_config = ConfigDict(extra="forbid")
    track: str
    kind: Literal["video", "audio"]
    direction: Literal["send", "recv"]
    source_classroom: str
    segments: list[SegmentEntry]
    # Other tracks recorded inside this one's files (the classroom microphone).
    muxed: list[str] = []


class Manifest(BaseModel):
    """Everything one classroom recorded of one lesson."""

    model_config = ConfigDict(extra="forbid")
    lesson_id: str
    classroom_id: str
    started_at: float
    ended_at: float
    tracks: list[TrackEntry]
