"""What a technician needs to see at a glance: enrolment, schedule, recordings to upload."""

from __future__ import annotations

import datetime as dt
import pathlib
from typing import Any

from edge_agent.errors import NotEnrolled
from edge_agent.identity import Identity
from edge_agent.schedule_cache import ScheduleCache
from edge_agent.uploads.journal import UploadJournal


def collect(state_dir: pathlib.Path, now: float) -> dict[str, Any]:
    """The agent's state as read from its state directory (no daemon needed)."""
    doc: dict[str, Any] = {"state_dir": str(state_dir)}
    try:
        identity = Identity.load(state_dir)
        doc["enrolled"] = True
        doc["classroom"] = identity.classroom_id
        doc["controller"] = identity.controller
    except NotEnrolled as err:
        doc["enrolled"] = False
        doc["problem"] = str(err)
    cache = ScheduleCache(state_dir)
    cache.load()
    upcoming = [lesson for lesson in cache.lessons if lesson.end_at > now]
    doc["next_lessons"] = [
        {
            "lesson": x.lesson_id,
            "role": x.role,
            "start_at": x.start_at,
            "end_at": x.end_at,
            "live": x.start_at <= now < x.end_at,
        }
        for x in upcoming[:5]
    ]
    journal_path = state_dir / "uploads.sqlite3"
    if journal_path.exists():
        journal = UploadJournal(journal_path)
        try:
            pending = journal.pending()
            doc["uploads"] = journal.summary()
        finally:
            journal.close()
    else:
        pending, doc["uploads"] = [], {}
    doc["pending_uploads"] = [f"{p.lesson_id}/{p.rel}" for p in pending]
    return doc


def render(doc: dict[str, Any]) -> str:
    """The human-readable form."""
    lines = []
    if doc["enrolled"]:
        lines.append(f"classroom   {doc['classroom']}  (controller {doc['controller']})")
    else:
        lines.append(f"NOT ENROLLED: {doc['problem']}")
    if doc["next_lessons"]:
        lines.append("next lessons (cached for offline recording):")
        for x in doc["next_lessons"]:
            start = dt.datetime.fromtimestamp(x["start_at"]).strftime("%a %d %b %H:%M")
            end = dt.datetime.fromtimestamp(x["end_at"]).strftime("%H:%M")
            live = "  ← live now" if x["live"] else ""
            lines.append(f"  {start}–{end}  {x['role']:<8} {x['lesson']}{live}")
    else:
        lines.append("next lessons: none cached (the controller sends them once connected)")
    pending = doc["pending_uploads"]
    lines.append(
        f"recording files waiting to upload: {len(pending)}"
        + (f" ({', '.join(pending[:5])})" if pending else "")
    )
    uploads = doc.get("uploads") or {}
    if uploads.get("last_error"):
        lines.append(f"  last upload error: {uploads['last_error']} (retried automatically)")
    return "\n".join(lines)
