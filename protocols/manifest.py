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


class RunEntry(BaseModel):
    """One run of the agent's recorder in this lesson, on the lesson timeline (seconds).

    ``ended_s`` is None when the run did not end cleanly (the agent was killed).
    """

    model_config = ConfigDict(extra="forbid")
    started_s: float
    ended_s: float | None = None
    pid: int = 0


class GapEntry(BaseModel):
    """Seconds of the lesson a track has no media for, and why."""

    model_config = ConfigDict(extra="forbid")
    track: str  # track key, or "*" for every track of the classroom
    start_s: float
    end_s: float
    reason: Literal["agent_not_running", "source_lost", "not_received", "unknown"]
    detail: str = ""


class Manifest(BaseModel):
    """Everything one classroom recorded of one lesson.

    Times in tracks, runs and gaps are seconds since the lesson's scheduled start
    (``epoch``, controller clock, Unix seconds).
    """

    model_config = ConfigDict(extra="forbid")
    lesson_id: str
    classroom_id: str
    started_at: float
    ended_at: float
    tracks: list[TrackEntry]
    epoch: float = 0.0
    scheduled_s: float = 0.0  # scheduled length of the lesson
    runs: list[RunEntry] = []
    gaps: list[GapEntry] = []
