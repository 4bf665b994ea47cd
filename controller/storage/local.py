"""The default storage backend: a local directory that takes uploads over HTTP."""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
from collections.abc import AsyncIterator

SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ChecksumMismatch(ValueError):
    """The bytes that arrived do not hash to the checksum the sender declared."""


class LocalStorage:
    """Files under one root: ``<lesson>/<classroom>/<track>/<segment>``."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root

    def path(self, *parts: str) -> pathlib.Path:
        """A path under the root; every part must be a plain name (no traversal)."""
        for part in parts:
            if not SAFE_PART.match(part) or part in (".", ".."):
                raise ValueError(
                    f"{part!r} is not a valid storage name (letters, digits, '.', '_', '-')"
                )
        return self.root.joinpath(*parts)

    async def put_stream(
        self, parts: tuple[str, ...], chunks: AsyncIterator[bytes], sha256: str
    ) -> tuple[pathlib.Path, int]:
        """Store a stream; verify its SHA-256 before it becomes visible."""
        target = self.path(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        size = 0
        with open(tmp, "wb") as fh:
            async for chunk in chunks:
                digest.update(chunk)
                fh.write(chunk)
                size += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if digest.hexdigest() != sha256.lower():
            tmp.unlink(missing_ok=True)
            raise ChecksumMismatch(
                f"{'/'.join(parts)}: received {size} bytes hashing to "
                f"{digest.hexdigest()}, sender declared {sha256}"
            )
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        return target, size


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
