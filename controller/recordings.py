"""Accepting a classroom's recording of a lesson: segments, manifest, stitched tracks."""

from __future__ import annotations

import json
import pathlib

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.db.models import Recording, StoredSegment
from controller.db.session import utcnow
from controller.errors import InvalidRequest
from controller.storage.local import LocalStorage, sha256_file
from controller.storage.stitch import stitch
from protocols.manifest import Manifest


def record_segment(
    db: Session,
    lesson_id: str,
    classroom_id: str,
    track: str,
    name: str,
    path: pathlib.Path,
    sha256: str,
    size: int,
) -> None:
    """Remember a verified segment (idempotent: a retried upload replaces the row)."""
    db.execute(
        delete(StoredSegment).where(
            StoredSegment.lesson_id == lesson_id,
            StoredSegment.classroom_id == classroom_id,
            StoredSegment.track == track,
            StoredSegment.name == name,
        )
    )
    db.add(
        StoredSegment(
            lesson_id=lesson_id,
            classroom_id=classroom_id,
            track=track,
            name=name,
            path=str(path),
            sha256=sha256,
            bytes=size,
            received_at=utcnow(),
        )
    )
    db.commit()


def parse_manifest(raw: bytes, lesson_id: str, classroom_id: str) -> Manifest:
    """Validate an uploaded manifest against the URL it was sent to."""
    try:
        manifest = Manifest.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as err:
        raise InvalidRequest(f"manifest is not valid: {err}") from err
    if manifest.lesson_id != lesson_id or manifest.classroom_id != classroom_id:
        raise InvalidRequest(
            f"manifest is for {manifest.lesson_id}/{manifest.classroom_id}, "
            f"uploaded to {lesson_id}/{classroom_id}"
        )
    return manifest


def missing_segments(db: Session, manifest: Manifest) -> list[str]:
    """Segments the manifest lists that storage does not hold with the same checksum."""
    stored = {
        (s.track, s.name): s.sha256
        for s in db.scalars(
            select(StoredSegment).where(
                StoredSegment.lesson_id == manifest.lesson_id,
                StoredSegment.classroom_id == manifest.classroom_id,
            )
        ).all()
    }
    missing = []
    for track in manifest.tracks:
        key = _track_key(track.track, track.direction, track.source_classroom)
        for seg in track.segments:
            if stored.get((key, seg.name)) != seg.sha256:
                missing.append(f"{key}/{seg.name}")
    return missing


def stitch_manifest(db: Session, storage: LocalStorage, manifest: Manifest) -> list[Recording]:
    """One playable file per track, remuxed from its segments; recorded in the catalogue."""
    lesson_id, classroom_id = manifest.lesson_id, manifest.classroom_id
    db.execute(
        delete(Recording).where(
            Recording.lesson_id == lesson_id, Recording.classroom_id == classroom_id
        )
    )
    out: list[Recording] = []
    for track in manifest.tracks:
        if not track.segments:
            continue
        key = _track_key(track.track, track.direction, track.source_classroom)
        ordered = sorted(track.segments, key=lambda s: s.seq)
        segments = [storage.path(lesson_id, classroom_id, key, s.name) for s in ordered]
        target = storage.path(lesson_id, classroom_id, f"{key}.mp4")
        result = stitch(segments, target, [s.start_s for s in ordered])
        rec = Recording(
            lesson_id=lesson_id,
            classroom_id=classroom_id,
            track=key,
            kind=track.kind,
            path=str(target),
            codec=result.codec,
            duration_s=result.duration_s,
            segments=len(segments),
            sha256=sha256_file(target),
            created_at=utcnow(),
        )
        db.add(rec)
        out.append(rec)
    db.commit()
    return out


def _track_key(track: str, direction: str, source: str) -> str:
    return track if direction == "send" else f"{source}-{track}"
