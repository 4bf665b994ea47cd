"""Multipart uploads from agents: open, hand out part URLs, complete and verify.

An agent opens an upload per file (segment or manifest) with its size and SHA-256,
PUTs the parts to the URLs it is given (straight to S3, or to the controller for the
local backend), then completes it. Storage reads the object back and hashes it; only a
matching checksum counts as stored. Opening the same file again while an upload is open
resumes it, and a file already stored with the same checksum is answered ``done``.

An agent that names ``"checksum": "crc32"`` when it opens sends every part's CRC32 (see
``protocols.uploads``): the upload is opened with part checksums, each part target carries
the CRC32 the agent must send with the part, and completing hands them to storage. The
read-back SHA-256 stays the check that counts.
"""

from __future__ import annotations

import logging
import math
import pathlib
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.common.errors import InvalidRequest, NotFound
from controller.db.models import StoredSegment, UploadSession
from controller.db.session import utcnow
from controller.recordings.intake import accept_manifest, record_segment
from controller.recordings.manual import lesson_for_upload
from controller.storage.backend import (
    ChecksumMismatch,
    MissingPartChecksums,
    StorageBackend,
    StorageError,
    object_key,
)
from protocols.uploads import CRC32, CompleteRequest, PartTargetsRequest

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MAX_FILE_BYTES = 64 * 1024**3
# The controller reads a manifest into memory to catalogue it; a real one is well under.
MAX_MANIFEST_BYTES = 8 * 1024**2


@dataclass(frozen=True)
class UploadRequest:
    """What an agent asks to upload."""

    lesson_id: str
    rel: str
    size: int
    sha256: str
    crc32: bool = False  # the agent sends every part's CRC32 (absent from older agents)

    @classmethod
    def parse(cls, body: object) -> UploadRequest:
        """Validate a JSON body; errors name the field and what is expected."""
        if not isinstance(body, dict):
            raise InvalidRequest("body must be a JSON object with lesson_id, rel, size, sha256")
        try:
            lesson_id, rel = str(body["lesson_id"]), str(body["rel"])
            size, sha = body["size"], str(body["sha256"]).lower()
        except KeyError as err:
            raise InvalidRequest(f"field {err.args[0]!r} is required") from None
        if not isinstance(size, int) or not 0 <= size <= MAX_FILE_BYTES:
            raise InvalidRequest(f"size must be an integer from 0 to {MAX_FILE_BYTES}")
        if rel == MANIFEST and size > MAX_MANIFEST_BYTES:
            raise InvalidRequest(
                f"{MANIFEST} is at most {MAX_MANIFEST_BYTES} bytes; this one says {size}"
            )
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise InvalidRequest("sha256 must be 64 hex digits")
        parts = rel.split("/")
        if rel != MANIFEST and len(parts) != 2:
            raise InvalidRequest(f"rel {rel!r} must be 'manifest.json' or '<track>/<segment>'")
        try:
            object_key(lesson_id, *parts)
        except ValueError as err:
            raise InvalidRequest(str(err)) from None
        checksum = body.get("checksum")
        if checksum not in (None, CRC32):
            raise InvalidRequest(f"checksum must be {CRC32!r} or absent, not {checksum!r}")
        return cls(lesson_id, rel, size, sha, checksum == CRC32)


class UploadService:
    """The controller's side of agent uploads."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        storage: StorageBackend,
        on_manifest: Callable[[str, str], None],
    ) -> None:
        self._sessions = sessions
        self.storage = storage
        self._on_manifest = on_manifest
        self.completed = 0
        self.checksum_failures = 0

    def _part_count(self, size: int, part_size: int) -> int:
        return max(1, math.ceil(size / part_size))

    def _check_part(self, row: UploadSession, n: object) -> int:
        """Part ``n``'s exact length; ``InvalidRequest`` naming the valid range if none."""
        count = self._part_count(row.size, row.part_size)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= count:
            raise InvalidRequest(
                f"part {n!r} is out of range 1..{count} for upload {row.id} "
                f"({row.size} bytes in parts of {row.part_size})"
            )
        return row.part_size if n < count else row.size - (count - 1) * row.part_size

    def open(self, classroom_id: str, req: UploadRequest) -> dict[str, object]:
        """Open (or resume) an upload; ``done`` when storage already holds the file."""
        with self._sessions() as db:
            lesson_for_upload(db, req.lesson_id, classroom_id)
            if req.rel != MANIFEST:
                track, name = req.rel.split("/")
                stored = db.scalar(
                    select(StoredSegment).where(
                        StoredSegment.lesson_id == req.lesson_id,
                        StoredSegment.classroom_id == classroom_id,
                        StoredSegment.track == track,
                        StoredSegment.name == name,
                    )
                )
                if stored is not None and stored.sha256 == req.sha256:
                    return {"done": True, "sha256": stored.sha256}
            existing = db.scalar(
                select(UploadSession).where(
                    UploadSession.lesson_id == req.lesson_id,
                    UploadSession.classroom_id == classroom_id,
                    UploadSession.rel == req.rel,
                    UploadSession.sha256 == req.sha256,
                    UploadSession.size == req.size,
                    UploadSession.state == "open",
                )
            )
            if existing is None:
                key = object_key("lessons", req.lesson_id, classroom_id, *req.rel.split("/"))
                backend_id = self.storage.begin(key, crc32=req.crc32)
                existing = UploadSession(
                    id=secrets.token_hex(16),
                    lesson_id=req.lesson_id,
                    classroom_id=classroom_id,
                    rel=req.rel,
                    key=key,
                    size=req.size,
                    sha256=req.sha256,
                    backend_id=backend_id,
                    part_size=self.storage.part_size,
                    state="open",
                    created_at=utcnow(),
                )
                db.add(existing)
                db.commit()
            return {
                "done": False,
                "upload_id": existing.id,
                "part_size": existing.part_size,
                "parts": self._part_count(existing.size, existing.part_size),
            }

    def _session(
        self, db: Session, classroom_id: str, upload_id: str, stored_ok: bool = False
    ) -> UploadSession:
        row = db.get(UploadSession, upload_id)
        if row is None or row.classroom_id != classroom_id:
            raise NotFound(f"upload {upload_id} is unknown; open it again")
        if row.state != "open" and not (stored_ok and row.state == "stored"):
            raise NotFound(f"upload {upload_id} is {row.state}; open it again")
        return row

    def part_targets(
        self, classroom_id: str, upload_id: str, ask: PartTargetsRequest, base_url: str
    ) -> dict[str, object]:
        """Where to PUT each part; ``auth`` says whether to send the upload token, and
        ``crc32`` (when present) the value to send as header x-amz-checksum-crc32."""
        with self._sessions() as db:
            row = self._session(db, classroom_id, upload_id)
            checksums = self.storage.part_checksums(row.backend_id)
            targets = []
            for n in ask.parts:
                self._check_part(row, n)
                crc = ask.crc32.get(n)
                try:
                    url = self.storage.part_url(row.key, row.backend_id, n, crc)
                except MissingPartChecksums as err:
                    self._give_up(db, row, err)
                own = url is None
                target: dict[str, object] = {
                    "n": n,
                    "url": url or f"{base_url}/api/v1/uploads/{upload_id}/parts/{n}",
                    "auth": own,
                }
                # S3 signed the value into the URL (it requires the header); the
                # controller's own route checks it when sent.
                if crc is not None and (own or checksums):
                    target["crc32"] = crc
                targets.append(target)
            return {"parts": targets}

    def _give_up(self, db: Session, row: UploadSession, err: MissingPartChecksums) -> NoReturn:
        """Drop an upload that cannot be finished; the agent opens a fresh one."""
        self.storage.abort(row.key, row.backend_id)
        row.state, row.error = "failed", str(err)[:500]
        db.commit()
        raise NotFound(f"upload {row.id} cannot be finished ({err}); open it again") from err

    def part_target(self, classroom_id: str, upload_id: str, n: int) -> tuple[str, int]:
        """The backend's id of an open upload and part ``n``'s exact length (local parts)."""
        with self._sessions() as db:
            row = self._session(db, classroom_id, upload_id)
            return row.backend_id, self._check_part(row, n)

    def complete(
        self, classroom_id: str, upload_id: str, done: CompleteRequest
    ) -> dict[str, object]:
        """Assemble and verify; raises ChecksumMismatch (the object is dropped) on a mismatch."""
        with self._sessions() as db:
            row = self._session(db, classroom_id, upload_id, stored_ok=True)
            if row.state == "stored":
                # A retried complete (the answer was lost, or the manifest could not be
                # processed the first time): the object is in storage; finish the work.
                lesson_id, rel, key = row.lesson_id, row.rel, row.key
                if rel == MANIFEST:
                    self._accept(key, lesson_id, classroom_id)
                else:
                    # Controllers before this one recorded the segment in a second commit,
                    # and one killed between the two left an upload "stored" with no
                    # segment: the lesson's manifest was then refused for ever.
                    track, name = rel.split("/")
                    record_segment(
                        db, lesson_id, classroom_id, track, name, key, row.sha256, row.size
                    )
                return {"stored": key, "bytes": row.size, "sha256": row.sha256, "verified": True}
            count = self._part_count(row.size, row.part_size)
            if sorted(p.n for p in done.parts) != list(range(1, count + 1)):
                raise InvalidRequest(f"complete needs the ETag of every part 1..{count}")
            etags = [(p.n, p.etag) for p in done.parts]
            crc32 = {p.n: p.crc32 for p in done.parts if p.crc32 is not None}
            try:
                stored = self.storage.finish(row.key, row.backend_id, etags, crc32)
            except MissingPartChecksums as err:
                self._give_up(db, row, err)
            if stored.sha256 != row.sha256 or stored.size != row.size:
                self.checksum_failures += 1
                self.storage.delete(row.key)
                row.state, row.error = "failed", "checksum mismatch"
                db.commit()
                raise ChecksumMismatch(
                    f"{row.rel}: storage holds {stored.size} bytes hashing to "
                    f"{stored.sha256}; the agent declared {row.size} bytes, {row.sha256}. "
                    "The object was dropped; upload it again"
                )
            row.state, row.completed_at = "stored", utcnow()
            lesson_id, rel, key = row.lesson_id, row.rel, row.key
            if rel != MANIFEST:
                # The upload's state and its segment in one commit (record_segment's): a
                # controller killed here leaves both or neither.
                track, name = rel.split("/")
                record_segment(
                    db, lesson_id, classroom_id, track, name, key, stored.sha256, stored.size
                )
            else:
                db.commit()
        self.completed += 1
        if rel == MANIFEST:
            self._accept(key, lesson_id, classroom_id)
        return {"stored": key, "bytes": stored.size, "sha256": stored.sha256, "verified": True}

    def _accept(self, key: str, lesson_id: str, classroom_id: str) -> None:
        """Catalogue and stitch a stored manifest (raises StorageError to be retried)."""
        raw = self._read_small(key)
        accept_manifest(self._sessions, self.storage, raw, lesson_id, classroom_id)
        self._on_manifest(lesson_id, classroom_id)

    def _read_small(self, key: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="cb-manifest-") as tmp:
            path = self.storage.fetch(key, pathlib.Path(tmp) / "manifest.json")
            if path.stat().st_size > MAX_MANIFEST_BYTES:
                raise InvalidRequest(f"{key} is over {MAX_MANIFEST_BYTES} bytes; not read")
            return path.read_bytes()


def parse_targets(body: object) -> PartTargetsRequest:
    """The body of a part-targets request; ``InvalidRequest`` naming what is wrong."""
    try:
        return PartTargetsRequest.parse(body)
    except ValueError as err:
        raise InvalidRequest(str(err)) from None


def parse_complete(body: object) -> CompleteRequest:
    """The body of a complete request; ``InvalidRequest`` naming what is wrong."""
    try:
        return CompleteRequest.parse(body)
    except ValueError as err:
        raise InvalidRequest(str(err)) from None


__all__ = [
    "StorageError",
    "UploadRequest",
    "UploadService",
    "parse_complete",
    "parse_targets",
]
