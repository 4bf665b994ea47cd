"""The default storage backend: a local directory that takes uploads over HTTP.

Multipart uploads are staged under ``.multipart/<upload>/<part>``; finishing one
concatenates the parts into a temporary file while hashing it, fsyncs it and renames it
into place, so an object is either whole and verified or absent.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import secrets
import shutil
from collections.abc import AsyncIterator
from datetime import datetime

from controller.storage.backend import (
    DEFAULT_PART_SIZE,
    StorageError,
    StoredObject,
    object_key,
)
from protocols.private_files import FILE_MODE, open_private, private_dir

STAGING = ".multipart"


class LocalStorage:
    """Files under one root, keyed like object storage."""

    name = "local"

    def __init__(self, root: pathlib.Path, part_size: int = DEFAULT_PART_SIZE) -> None:
        self.root = root
        self.part_size = part_size

    def path(self, *parts: str) -> pathlib.Path:
        """A path under the root for plain names (no traversal)."""
        return self.root / object_key(*parts)

    def _key_path(self, key: str) -> pathlib.Path:
        return self.path(*key.split("/"))

    def begin(self, key: str, crc32: bool = False) -> str:
        """Open a staged multipart upload (a part's CRC32 is checked as it arrives, when
        the agent sends one, whatever ``crc32`` says)."""
        self._key_path(key)  # validates the key
        backend_id = secrets.token_hex(12)
        private_dir(self.root / STAGING / backend_id)
        return backend_id

    def part_checksums(self, backend_id: str) -> bool:
        """No: a part's CRC32 is optional here (checked when sent)."""
        return False

    def part_url(
        self, key: str, backend_id: str, number: int, crc32: str | None = None
    ) -> str | None:
        """Parts of a local upload go to the controller itself."""
        return None

    def _staging(self, backend_id: str) -> pathlib.Path:
        object_key(backend_id)
        path = self.root / STAGING / backend_id
        if not path.is_dir():
            raise StorageError(f"upload {backend_id} is unknown or finished; start it again")
        return path

    async def put_part(
        self, backend_id: str, number: int, chunks: AsyncIterator[bytes]
    ) -> tuple[str, int]:
        """Store one part; returns its ETag (MD5, as S3 does) and size."""
        staging = self._staging(backend_id)
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        tmp = staging / f"{number:05d}.part"
        tmp.unlink(missing_ok=True)  # a part cut short before: start it again
        with os.fdopen(open_private(tmp), "wb") as fh:
            async for chunk in chunks:
                md5.update(chunk)
                fh.write(chunk)
                size += len(chunk)
        os.replace(tmp, staging / f"{number:05d}")
        return md5.hexdigest(), size

    def finish(
        self,
        key: str,
        backend_id: str,
        etags: list[tuple[int, str]],
        crc32: dict[int, str] | None = None,
    ) -> StoredObject:
        """Concatenate the listed parts, hashing them; the object appears whole or not at all
        (each part's CRC32 was checked as it arrived)."""
        staging = self._staging(backend_id)
        target = self._key_path(key)
        private_dir(target.parent)
        tmp = target.with_name(target.name + f".{backend_id}.part")
        tmp.unlink(missing_ok=True)
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(open_private(tmp), "wb") as out:
            for number, etag in sorted(etags):
                part = staging / f"{number:05d}"
                if not part.exists():
                    tmp.unlink(missing_ok=True)
                    raise StorageError(f"{key}: part {number} was never uploaded")
                md5 = hashlib.md5(usedforsecurity=False)
                with open(part, "rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(1 << 20), b""):  # type: ignore[misc]
                        md5.update(block)
                        digest.update(block)
                        out.write(block)
                        size += len(block)
                if md5.hexdigest() != etag.strip('"'):
                    tmp.unlink(missing_ok=True)
                    raise StorageError(f"{key}: part {number} ETag {etag} does not match")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        shutil.rmtree(staging, ignore_errors=True)
        return StoredObject(key, size, digest.hexdigest())

    def abort(self, key: str, backend_id: str) -> None:
        """Remove the staged parts."""
        object_key(backend_id)
        shutil.rmtree(self.root / STAGING / backend_id, ignore_errors=True)

    def fetch(self, key: str, dest: pathlib.Path) -> pathlib.Path:
        """The object's own path: nothing to copy."""
        path = self._key_path(key)
        if not path.exists():
            raise StorageError(f"{key}: not in storage")
        return path

    def store_file(self, src: pathlib.Path, key: str) -> StoredObject:
        """Move a finished local file into place."""
        target = self._key_path(key)
        private_dir(target.parent)
        if src != target:
            os.replace(src, target)
        # A stitched file is written by FFmpeg with the process umask: make it private.
        target.chmod(FILE_MODE)
        return StoredObject(key, target.stat().st_size, sha256_file(target))

    def delete(self, key: str) -> int:
        """Delete one object."""
        path = self._key_path(key)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def local_path(self, key: str) -> pathlib.Path | None:
        """Objects are plain files here."""
        return self._key_path(key)

    def read_url(self, key: str) -> str | None:
        """The controller serves local files itself."""
        return None

    def keys(self, prefix: str) -> list[str]:
        """Every file under ``prefix/`` (half-assembled ``.part`` files included)."""
        top = self._key_path(prefix)
        if not top.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in top.rglob("*") if p.is_file())

    def prune(self, prefix: str) -> None:
        """Remove the empty directories left under ``prefix`` (and it, if empty)."""
        top = self._key_path(prefix)
        if not top.is_dir():
            return
        for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        if not any(top.iterdir()):
            top.rmdir()

    def abort_stale_uploads(
        self, started_before: datetime, keep: frozenset[str] = frozenset()
    ) -> list[str]:
        """Remove staged uploads not touched since ``started_before``; returns their ids."""
        staging = self.root / STAGING
        if not staging.is_dir():
            return []
        cutoff = started_before.timestamp()
        dropped = []
        for upload in sorted(staging.iterdir()):
            newest = max([upload.stat().st_mtime, *(p.stat().st_mtime for p in upload.iterdir())])
            if newest < cutoff and upload.name not in keep:
                shutil.rmtree(upload, ignore_errors=True)
                dropped.append(upload.name)
        return dropped


def sha256_file(path: pathlib.Path) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
