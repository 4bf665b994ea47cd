"""Keys, database and recordings are the controller user's alone (0600 files, 0700 dirs),
whatever umask the process was started with."""

from __future__ import annotations

import os
import pathlib
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from controller.agents.keys import ServerKeys
from controller.app.daemon import ControllerConfig, ControllerDaemon
from controller.storage.local import LocalStorage


def mode(path: pathlib.Path) -> int:
    """Permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Run the test under the usual login umask (022), as a daemon would without ours."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


class ExposureWatch:
    """Notes any file in ``directory`` readable by others at any audited moment.

    A CPython audit hook runs before every ``open``, ``chmod``, ``rename``…, so a file that
    is created with loose permissions and tightened afterwards is caught in between.
    """

    def __init__(self) -> None:
        self.directory: pathlib.Path | None = None
        self.seen: set[str] = set()
        self._busy = False

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        """The audit hook (hooks cannot be removed, so it is cheap when idle)."""
        if self.directory is None or self._busy:
            return
        self._busy = True
        try:
            for entry in os.scandir(self.directory):
                if entry.is_file() and entry.stat().st_mode & 0o077:
                    self.seen.add(entry.name)
        finally:
            self._busy = False


WATCH = ExposureWatch()
sys.addaudithook(WATCH.hook)


def test_the_key_file_is_never_readable_by_others(
    tmp_path: pathlib.Path, loose_umask: None
) -> None:
    tmp_path.mkdir(exist_ok=True)
    WATCH.directory, WATCH.seen = tmp_path, set()
    try:
        ServerKeys.load_or_create(tmp_path)
    finally:
        WATCH.directory = None
    assert WATCH.seen == set(), f"readable by others while being written: {WATCH.seen}"
    assert mode(tmp_path / "controller.curve") == 0o600


@pytest.fixture
async def loose_controller(
    controller_config: ControllerConfig, loose_umask: None
) -> AsyncIterator[ControllerDaemon]:
    """A controller whose state dir was made 0755 with a 0644 database by an older version."""
    state = controller_config.state_dir
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    daemon = ControllerDaemon(controller_config)
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()


async def test_state_dir_database_and_keys_are_private(loose_controller: ControllerDaemon) -> None:
    state = loose_controller.config.state_dir
    assert mode(state) == 0o700
    assert mode(state / "controller.curve") == 0o600
    db = state / "controller.sqlite3"
    assert mode(db) == 0o600
    for side in ("controller.sqlite3-wal", "controller.sqlite3-shm"):
        if (state / side).exists():
            assert mode(state / side) == 0o600, side


def test_an_older_database_is_tightened(tmp_path: pathlib.Path, loose_umask: None) -> None:
    from controller.db.session import database_url, make_engine, migrate

    state = tmp_path / "state"
    state.mkdir()
    (state / "controller.sqlite3").touch(mode=0o644)
    (state / "controller.sqlite3").chmod(0o644)
    migrate(database_url(state))
    make_engine(database_url(state)).dispose()
    assert mode(state / "controller.sqlite3") == 0o600


async def test_uploaded_and_stitched_recordings_are_private(
    tmp_path: pathlib.Path, loose_umask: None
) -> None:
    storage = LocalStorage(tmp_path / "storage")
    key = "lessons/L1/room-a/teacher/teacher-00001.mp4"
    upload = storage.begin(key)

    async def body() -> AsyncIterator[bytes]:
        yield b"segment bytes"

    etag, _ = await storage.put_part(upload, 1, body())
    staged = tmp_path / "storage" / ".multipart" / upload
    assert mode(staged) == 0o700 and mode(staged / "00001") == 0o600
    stored = storage.finish(key, upload, [(1, etag)])
    path = storage.local_path(stored.key)
    assert path is not None and mode(path) == 0o600
    for parent in [path.parent, *path.parent.parents][:5]:
        assert mode(parent) == 0o700, parent
    # A stitched file written by FFmpeg under the process umask, then stored.
    stitched = tmp_path / "teacher.mp4"
    stitched.write_bytes(b"mp4")
    assert mode(stitched) == 0o644
    storage.store_file(stitched, "lessons/L1/room-a/teacher.mp4")
    assert mode(tmp_path / "storage" / "lessons/L1/room-a/teacher.mp4") == 0o600
