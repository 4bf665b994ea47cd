"""What a storage backend offers the controller: multipart uploads straight from agents,
read-back verification, and files for stitching and playback.

Object keys look like ``lessons/<lesson>/<classroom>/<track>/<segment>``. Every method is
blocking; the HTTP API calls them in worker threads.
"""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DEFAULT_PART_SIZE = 8 * 1024 * 1024


class StorageError(RuntimeError):
    """Storage refused or failed an operation; the message names the object."""


class ChecksumMismatch(StorageError):
    """The stored bytes do not hash to the checksum the sender declared."""


class MissingPartChecksums(StorageError):
    """An upload opened with part checksums was sent a part without one (an agent was
    downgraded mid-upload): it cannot be finished; open a fresh one."""


def object_key(*parts: str) -> str:
    """A storage key from plain names (letters, digits, '.', '_', '-'; no traversal)."""
    for part in parts:
        if not SAFE_PART.match(part) or part in (".", ".."):
            raise ValueError(
                f"{part!r} is not a valid storage name (letters, digits, '.', '_', '-', "
                "starting with a letter or digit)"
            )
    return "/".join(parts)


@dataclass(frozen=True)
class StoredObject:
    """An object storage holds: its size and the SHA-256 storage computed itself."""

    key: str
    size: int
    sha256: str


class StorageBackend(Protocol):
    """A place recordings live (local directory or S3-compatible store)."""

    name: str
    part_size: int

    def begin(self, key: str, crc32: bool = False) -> str:
        """Open a multipart upload of ``key`` (whose parts will each carry their CRC32 if
        ``crc32``); returns the backend's upload id."""

    def part_checksums(self, backend_id: str) -> bool:
        """Whether every part of the upload must carry its CRC32 (and the agent send it)."""

    def part_url(
        self, key: str, backend_id: str, number: int, crc32: str | None = None
    ) -> str | None:
        """A URL the agent PUTs part ``number`` (whose CRC32 is ``crc32``) to, or None to
        send it to the controller."""

    def finish(
        self,
        key: str,
        backend_id: str,
        etags: list[tuple[int, str]],
        crc32: dict[int, str] | None = None,
    ) -> StoredObject:
        """Assemble the parts (with their CRC32s, part number to value), then read the
        object back and hash it."""

    def abort(self, key: str, backend_id: str) -> None:
        """Drop an unfinished upload and its parts."""

    def fetch(self, key: str, dest: pathlib.Path) -> pathlib.Path:
        """A local file with the object's bytes (the object itself when it is local)."""

    def store_file(self, src: pathlib.Path, key: str) -> StoredObject:
        """Put a local file (a stitched recording) at ``key``."""

    def delete(self, key: str) -> int:
        """Delete ``key``; returns the bytes freed (0 if it was not there)."""

    def local_path(self, key: str) -> pathlib.Path | None:
        """The object's path for direct serving, if this backend is a local directory."""

    def read_url(self, key: str) -> str | None:
        """A time-limited URL a browser can fetch (with ranges), if the backend has one."""

    def keys(self, prefix: str) -> list[str]:
        """Every object under ``prefix/`` (unfinished leftovers included), sorted."""

    def abort_stale_uploads(
        self, started_before: datetime, keep: frozenset[str] = frozenset()
    ) -> list[str]:
        """Drop multipart uploads begun before ``started_before`` with their parts, except
        those whose upload id is in ``keep``; returns the keys (or ids) dropped."""
