"""The package a provincial resource platform ingests: one zip holding the item's MP4 and
``metadata.json`` (every field is described in ``docs/resource_package.md``).

The MP4 is stored uncompressed in the zip (it is compressed already), so a package is
written quickly to a temporary file and streamed from there.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import zipfile
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from controller.db.models import Classroom, Lesson, LibraryItem
from controller.db.session import as_utc

FORMAT = "classbridge.resource-package/1"
METADATA_NAME = "metadata.json"
CHUNK = 1024 * 1024


def media_name(item: LibraryItem) -> str:
    """The MP4's name inside the package."""
    return f"{item.kind}-{item.id}.mp4"


def package_name(item: LibraryItem) -> str:
    """The zip's download name."""
    return f"classbridge-resource-{item.id}.zip"


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def metadata(
    db: Session, item: LibraryItem, media: pathlib.Path, sha256: str, exported_at: datetime
) -> dict[str, Any]:
    """``metadata.json`` of an approved item whose file is ``media``."""
    lesson = db.get(Lesson, item.lesson_id)
    room = db.get(Classroom, item.classroom_id)
    return {
        "format": FORMAT,
        "id": item.id,
        "kind": item.kind,
        "title": item.title,
        "subject": item.subject,
        "grade": item.grade,
        "chapter": item.chapter,
        "teacher": item.teacher,
        "school": item.school,
        "lesson": {
            "id": item.lesson_id,
            "kind": lesson.kind if lesson is not None else None,
            "title": lesson.title if lesson is not None else None,
            "start_at": _iso(lesson.start_at) if lesson is not None else None,
            "end_at": _iso(lesson.end_at) if lesson is not None else None,
        },
        "classroom": {"id": item.classroom_id, "name": room.name if room is not None else None},
        "track": item.track,
        "clip": (
            {"source_start_s": item.clip_start_s, "source_end_s": item.clip_end_s}
            if item.kind == "clip"
            else None
        ),
        "media": {
            "file": media_name(item),
            "mime_type": "video/mp4",
            "codec": item.codec,
            "duration_s": round(item.duration_s, 3) if item.duration_s is not None else None,
            "bytes": media.stat().st_size,
            "sha256": sha256,
        },
        "review": {
            "requested_by": item.requested_by,
            "requested_at": _iso(item.requested_at),
            "approved_by": item.reviewed_by,
            "approved_at": _iso(item.reviewed_at),
        },
        "exported_at": _iso(exported_at),
    }


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_package(
    db: Session,
    item: LibraryItem,
    media: pathlib.Path,
    out: pathlib.Path,
    exported_at: datetime,
) -> dict[str, Any]:
    """Write the zip of ``item`` (its file at ``media``) to ``out``; its metadata."""
    meta = metadata(db, item, media, _sha256(media), exported_at)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.write(media, media_name(item))
        zf.writestr(
            METADATA_NAME,
            json.dumps(meta, ensure_ascii=False, indent=2),
            compress_type=zipfile.ZIP_DEFLATED,
        )
    return meta
