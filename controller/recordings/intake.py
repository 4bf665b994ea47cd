"""Accepting a classroom's recording of a lesson: segments, manifest, coverage, stitching."""

from __future__ import annotations

import json
import logging
import pathlib
import tempfile

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from controller.common.errors import InvalidRequest
from controller.db.models import Recording, RecordingManifest, StoredSegment
from controller.db.session import as_utc, utcnow
from controller.lessons.scheduling import get_lesson, log_event
from controller.recordings.catalogue import coverage, track_key
from controller.recordings.manual import extend_to
from controller.storage.backend import StorageBackend, object_key
from controller.storage.sandbox import stitch_sandboxed
from protocols.manifest import Manifest

log = logging.getLogger(__name__)


def record_segment(
    db: Session,
    lesson_id: str,
    classroom_id: str,
    track: str,
    name: str,
    key: str,
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
            path=key,
            sha256=sha256,
            bytes=size,
            received_at=utcnow(),
        )
    )
    db.commit()


def parse_manifest(raw: bytes, lesson_id: str, classroom_id: str) -> Manifest:
    """Validate an uploaded manifest against the lesson and classroom it was sent for."""
    try:
        manifest = Manifest.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as err:
        raise InvalidRequest(f"manifest is not valid: {err}") from err
    if manifest.lesson_id != lesson_id or manifest.classroom_id != classroom_id:
        raise InvalidRequest(
            f"manifest is for {manifest.lesson_id}/{manifest.classroom_id}, "
            f"uploaded for {lesson_id}/{classroom_id}"
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
    return [
        f"{track_key(t)}/{s.name}"
        for t in manifest.tracks
        for s in t.segments
        if stored.get((track_key(t), s.name)) != s.sha256
    ]


def accept_manifest(
    sessions: sessionmaker[Session],
    storage: StorageBackend,
    raw: bytes,
    lesson_id: str,
    classroom_id: str,
) -> dict[str, object]:
    """Check a stored manifest, compute coverage, catalogue it and stitch each track."""
    with sessions() as db:
        lesson = get_lesson(db, lesson_id)
        manifest = parse_manifest(raw, lesson_id, classroom_id)
        extend_to(lesson, manifest.ended_at)
        missing = missing_segments(db, manifest)
        if missing:
            raise InvalidRequest(
                f"storage lacks {len(missing)} segment(s) the manifest lists: "
                f"{', '.join(missing[:10])}; upload them first"
            )
        scheduled = (as_utc(lesson.end_at) - as_utc(lesson.start_at)).total_seconds()
        cover = coverage(manifest, scheduled)
        db.merge(
            RecordingManifest(
                lesson_id=lesson_id,
                classroom_id=classroom_id,
                manifest=manifest.model_dump(mode="json"),
                coverage=cover,
                received_at=utcnow(),
            )
        )
        db.commit()
        gaps = [g for t in cover["tracks"] for g in t["gaps"]]  # type: ignore[attr-defined]
        log_event(
            db,
            lesson_id,
            f"{classroom_id}: recording covers {100 * float(cover['ratio']):.2f}% of the "  # type: ignore[arg-type]
            f"scheduled time; {len(gaps)} gap(s)",
        )
        stitch_manifest(db, storage, manifest)
    return cover


def stitch_manifest(db: Session, storage: StorageBackend, manifest: Manifest) -> list[Recording]:
    """One playable file per track, remuxed from its segments; recorded in the catalogue."""
    lesson_id, classroom_id = manifest.lesson_id, manifest.classroom_id
    db.execute(
        delete(Recording).where(
            Recording.lesson_id == lesson_id, Recording.classroom_id == classroom_id
        )
    )
    out: list[Recording] = []
    with tempfile.TemporaryDirectory(prefix="cb-stitch-") as tmp:
        work = pathlib.Path(tmp)
        for track in manifest.tracks:
            if not track.segments:
                continue
            key = track_key(track)
            ordered = sorted(track.segments, key=lambda s: s.seq)
            files = [
                storage.fetch(
                    object_key("lessons", lesson_id, classroom_id, key, s.name),
                    work / key / s.name,
                )
                for s in ordered
            ]
            target_key = object_key("lessons", lesson_id, classroom_id, f"{key}.mp4")
            local = storage.local_path(target_key)
            target = local if local is not None else work / f"{key}.mp4"
            # Agent-supplied bytes: demuxed in a sandboxed child, never in this process.
            result = stitch_sandboxed(files, target, [s.start_s for s in ordered])
            if result.skipped:
                log.error(
                    "lesson %s %s/%s: %d segment(s) left out of the recording: %s",
                    lesson_id,
                    classroom_id,
                    key,
                    len(result.skipped),
                    "; ".join(result.skipped[:5]),
                )
                log_event(
                    db,
                    lesson_id,
                    f"{classroom_id}: {len(result.skipped)} segment(s) of {key} could not be "
                    f"read and are gaps in its recording: {'; '.join(result.skipped[:3])}",
                )
            stored = storage.store_file(target, target_key)
            rec = Recording(
                lesson_id=lesson_id,
                classroom_id=classroom_id,
                track=key,
                kind=track.kind,
                path=target_key,
                codec=result.codec,
                duration_s=result.duration_s,
                segments=len(files) - len(result.skipped),
                sha256=stored.sha256,
                created_at=utcnow(),
            )
            db.add(rec)
            out.append(rec)
    db.commit()
    return out


def catalogue_document(db: Session, lesson_id: str) -> dict[str, object]:
    """lesson → classrooms → tracks → segments, with coverage and gaps."""
    lesson = get_lesson(db, lesson_id)
    manifests = db.scalars(
        select(RecordingManifest).where(RecordingManifest.lesson_id == lesson_id)
    ).all()
    segments = db.scalars(select(StoredSegment).where(StoredSegment.lesson_id == lesson_id)).all()
    recs = db.scalars(select(Recording).where(Recording.lesson_id == lesson_id)).all()
    classrooms = []
    for m in manifests:
        manifest = Manifest.model_validate(m.manifest)
        stored = {(s.track, s.name): s for s in segments if s.classroom_id == m.classroom_id}
        tracks = []
        for t in manifest.tracks:
            key = track_key(t)
            rec = next(
                (r for r in recs if r.classroom_id == m.classroom_id and r.track == key), None
            )
            tracks.append(
                {
                    "track": key,
                    "kind": t.kind,
                    "direction": t.direction,
                    "muxed": t.muxed,
                    "file": f"/api/v1/recordings/{lesson_id}/{m.classroom_id}/{key}.mp4"
                    if rec
                    else None,
                    "duration_s": rec.duration_s if rec else None,
                    "segments": [
                        {
                            "name": s.name,
                            "seq": s.seq,
                            "start_s": s.start_s,
                            "end_s": s.end_s,
                            "bytes": s.bytes,
                            "sha256": s.sha256,
                            "stored": (key, s.name) in stored
                            and stored[(key, s.name)].sha256 == s.sha256,
                        }
                        for s in t.segments
                    ],
                }
            )
        classrooms.append(
            {
                "classroom": m.classroom_id,
                "coverage": m.coverage,
                "runs": [r.model_dump() for r in manifest.runs],
                "tracks": tracks,
            }
        )
    return {"lesson_id": lesson.id, "kind": lesson.kind, "classrooms": classrooms}
