"""The agent's identity (its secret key) and upload journal are its user's alone."""

from __future__ import annotations

import os
import pathlib
import stat
from collections.abc import Iterator

import pytest

from edge_agent.identity import IDENTITY_FILE, Identity
from edge_agent.uploads.journal import UploadJournal


def mode(path: pathlib.Path) -> int:
    """Permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Run the test under the usual login umask (022)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_identity_is_0600_even_over_a_stale_temporary_file(
    tmp_path: pathlib.Path, loose_umask: None
) -> None:
    state = tmp_path / "agent"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    # An interrupted save by an older version left a world-readable temporary file.
    stale = state / "identity.tmp"
    stale.write_text("{}")
    stale.chmod(0o644)
    identity = Identity("room-a", "tcp://127.0.0.1:7700", "P" * 40, "p" * 40, "s" * 40)
    path = identity.save(state)
    assert path == state / IDENTITY_FILE
    assert mode(path) == 0o600
    assert mode(state) == 0o700
    assert Identity.load(state) == identity


def test_upload_journal_is_0600(tmp_path: pathlib.Path, loose_umask: None) -> None:
    journal = UploadJournal(tmp_path / "agent" / "uploads.sqlite3")
    try:
        assert mode(tmp_path / "agent") == 0o700
        for name in ("uploads.sqlite3", "uploads.sqlite3-wal"):
            path = tmp_path / "agent" / name
            if path.exists():
                assert mode(path) == 0o600, name
        assert (tmp_path / "agent" / "uploads.sqlite3-wal").exists()
    finally:
        journal.close()
