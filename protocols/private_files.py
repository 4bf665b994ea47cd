"""Files only the daemon's own user may read: keys, databases, recordings (等保 3 级).

Both daemons call :func:`restrict_umask` when they start, so whatever a library creates
(PyAV's output files, SQLite's ``-wal``) is 0600. The functions below also set the mode
explicitly, so such a file is never readable by others, not even for a moment, whatever
the process's umask.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def restrict_umask() -> int:
    """Set the process umask to 0077; returns the previous one."""
    return os.umask(PRIVATE_UMASK)


def _tighten(path: pathlib.Path, mode: int) -> None:
    st = path.stat()
    # Only our own files: a state dir handed to us by root stays as root set it.
    if st.st_mode & 0o777 != mode and st.st_uid == os.geteuid():
        path.chmod(mode)


def private_dir(path: pathlib.Path) -> pathlib.Path:
    """Make ``path`` (and any missing parents) with mode 0700; tighten it if it exists."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another thread
            directory.mkdir(mode=DIR_MODE)
    _tighten(path, DIR_MODE)
    return path


def private_file(path: pathlib.Path) -> pathlib.Path:
    """Create ``path`` empty with mode 0600 if it is missing, or tighten it to 0600."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        _tighten(path, FILE_MODE)
    return path


def open_private(path: pathlib.Path) -> int:
    """A new file at ``path`` opened for writing, created 0600 (never an existing file)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)


def write_private(path: pathlib.Path, data: bytes) -> pathlib.Path:
    """Replace ``path`` atomically with ``data``, in a file created 0600 from the start."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = open_private(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def sqlite_private(url: str) -> None:
    """Make a SQLite database file (and its WAL and shared-memory files) 0600.

    SQLite gives its ``-wal`` and ``-shm`` files the database file's mode, so creating the
    database 0600 before SQLite opens it keeps all three private.
    """
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return
    path = pathlib.Path(url.removeprefix("sqlite:///"))
    if not path.parent.exists():
        return
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            _tighten(side, FILE_MODE)
