"""Lessons for the quota tests, written straight to the database: held or not (what the
receivers recorded), and published with or without the recording behind it."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from controller.db.models import (
    Lesson,
    LessonReceiver,
    PublishedRecording,
    Recording,
    RecordingManifest,
)

_ids = itertools.count()


def lesson(
    s: Session,
    day: date = date(2026, 3, 4),
    kind: str = "synchronous",
    subject: str = "music",
    lead: str = "city-101",
    receivers: tuple[str, ...] = ("village-201",),
    held: bool = True,
    teacher: str | None = "t-wang",
    published: bool | None = None,  # None: not published; False: published, file gone
) -> str:
    """A lesson on ``day`` (08:00 Beijing); held when its receivers recorded 95 % of the
    lead's camera, not held at 50 %."""
    lid = f"q{next(_ids)}"
    start = datetime(day.year, day.month, day.day, 0, 0, tzinfo=UTC)
    s.add(
        Lesson(
            id=lid,
            kind=kind,
            lead_classroom_id=lead,
            start_at=start,
            end_at=start + timedelta(minutes=40),
            state="ended",
            reports={},
            created_at=start,
            subject=subject,
            teacher_id=teacher,
            term_id="spring",
        )
    )
    s.flush()
    share = 0.95 if held else 0.5
    for room in receivers:
        s.add(LessonReceiver(lesson_id=lid, classroom_id=room))
        s.add(
            RecordingManifest(
                lesson_id=lid,
                classroom_id=room,
                manifest={},
                coverage={"tracks": [{"direction": "recv", "kind": "video", "ratio": share}]},
                received_at=start,
            )
        )
    if published is not None:
        if published:
            s.add(
                Recording(
                    lesson_id=lid,
                    classroom_id=lead,
                    track="teacher",
                    kind="video",
                    path="x",
                    codec="h264",
                    duration_s=2400.0,
                    segments=1,
                    sha256="0" * 64,
                    created_at=start,
                )
            )
        s.add(
            PublishedRecording(
                lesson_id=lid, classroom_id=lead, track="teacher", published_at=start
            )
        )
    s.commit()
    return lid
