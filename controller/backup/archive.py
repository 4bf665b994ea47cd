"""A controller's state in one archive, and back.

The archive (gzip'd tar, written 0600) holds:

- ``controller.sqlite3``: a consistent copy made with SQLite's online backup API, so it
  can be taken while the controller runs;
- every other file of the state directory — the CURVE key pair, ``tls/`` (certificates
  and keys), any settings — except recordings (``storage/``, backed up with the store
  itself) and the database's own WAL files;
- ``backup.json``: when, from where, and each file's size and SHA-256, checked on restore.

Restoring writes into a fresh directory, refusing one that already holds a controller
unless told to replace it (the old one is then kept beside it, renamed).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.common.errors import ControllerError
from protocols.private_files import open_private, private_dir, private_file

DATABASE = "controller.sqlite3"
META = "backup.json"
FORMAT = 1
# Not part of a backup: recordings live in storage; WAL files are folded into the copy.
SKIPPED_DIRS = {"storage"}
SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal", ".tmp", ".part")


class BackupError(ControllerError):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class BackupSummary:
    """What an archive holds."""

    path: pathlib.Path
    files: dict[str, int]  # name → bytes


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _state_files(state_dir: pathlib.Path) -> list[pathlib.Path]:
    out = []
    for path in sorted(state_dir.rglob("*")):
        rel = path.relative_to(state_dir)
        if rel.parts[0] in SKIPPED_DIRS or not path.is_file() or path.is_symlink():
            continue
        if rel.as_posix() == DATABASE or path.name.endswith(SKIPPED_SUFFIXES):
            continue
        out.append(path)
    return out


def _database_copy(source: pathlib.Path, work: pathlib.Path) -> bytes:
    """A consistent copy of a live SQLite database (online backup API)."""
    target = work / DATABASE
    private_file(target)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return target.read_bytes()


def backup(state_dir: pathlib.Path, archive: pathlib.Path) -> BackupSummary:
    """Write ``state_dir``'s database, keys and settings to ``archive`` (mode 0600)."""
    if not (state_dir / DATABASE).is_file():
        raise BackupError(f"{state_dir} holds no {DATABASE}; is this a controller state dir?")
    contents: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="cb-backup-") as tmp:
        contents[DATABASE] = _database_copy(state_dir / DATABASE, pathlib.Path(tmp))
    for path in _state_files(state_dir):
        contents[path.relative_to(state_dir).as_posix()] = path.read_bytes()
    meta = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "state_dir": str(state_dir),
        "files": {n: {"bytes": len(d), "sha256": _sha256(d)} for n, d in contents.items()},
    }
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp_archive = archive.with_name(f".{archive.name}.tmp")
    tmp_archive.unlink(missing_ok=True)
    try:
        with (
            os.fdopen(open_private(tmp_archive), "wb") as raw,
            tarfile.open(fileobj=raw, mode="w:gz") as tar,
        ):
            for name, data in [(META, json.dumps(meta, indent=2).encode()), *contents.items()]:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o600, int(datetime.now().timestamp())
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp_archive, archive)
    except BaseException:
        tmp_archive.unlink(missing_ok=True)
        raise
    return BackupSummary(archive, {n: len(d) for n, d in contents.items()})


def _read_archive(archive: pathlib.Path) -> dict[str, bytes]:
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            files: dict[str, bytes] = {}
            for member in tar.getmembers():
                entry = pathlib.PurePosixPath(member.name)
                if not member.isfile() or entry.is_absolute() or ".." in entry.parts:
                    raise BackupError(f"{archive}: unexpected entry {member.name!r}; not restored")
                handle = tar.extractfile(member)
                assert handle is not None
                files[member.name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise BackupError(f"{archive}: not a readable controller backup: {err}") from err
    if META not in files or DATABASE not in files:
        raise BackupError(f"{archive}: not a controller backup (no {META} or {DATABASE})")
    meta = json.loads(files.pop(META))
    if meta.get("format") != FORMAT:
        raise BackupError(f"{archive}: backup format {meta.get('format')} is not {FORMAT}")
    for name, data in files.items():
        want = meta["files"].get(name, {}).get("sha256")
        if want != _sha256(data):
            raise BackupError(f"{archive}: {name} does not match its checksum; damaged")
    return files


def restore(archive: pathlib.Path, state_dir: pathlib.Path, force: bool = False) -> BackupSummary:
    """Unpack ``archive`` into ``state_dir`` (0700, files 0600).

    An existing controller there is refused unless ``force``; then it is renamed aside
    (``<dir>.replaced-<time>``) rather than deleted.
    """
    files = _read_archive(archive)
    occupied = state_dir.exists() and any(state_dir.iterdir())
    if occupied and not force:
        raise BackupError(
            f"{state_dir} is not empty; restore into a new directory, or add --force to "
            "replace it (the current one is kept, renamed)"
        )
    private_dir(state_dir.parent)
    staging = pathlib.Path(
        tempfile.mkdtemp(prefix=f".{state_dir.name}.restore-", dir=state_dir.parent)
    )
    try:
        staging.chmod(0o700)
        for name, data in files.items():
            target = staging / name
            private_dir(target.parent)
            with os.fdopen(open_private(target), "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        if occupied:
            aside = state_dir.with_name(
                f"{state_dir.name}.replaced-{datetime.now(UTC):%Y%m%dT%H%M%S}"
            )
            state_dir.rename(aside)
        elif state_dir.exists():
            state_dir.rmdir()
        staging.rename(state_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BackupSummary(state_dir, {n: len(d) for n, d in files.items()})
