"""Disk policy evicts only what storage verified, oldest first; the controller clock
survives restarts."""

from __future__ import annotations

import pathlib

from edge_agent.clock import ControllerClock
from edge_agent.disk import DiskPolicy, lesson_bytes
from edge_agent.uploads.journal import UploadJournal

MB = 1024 * 1024


def _file(path: pathlib.Path, size: int) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def test_eviction_takes_only_verified_files_oldest_first(tmp_path: pathlib.Path) -> None:
    journal = UploadJournal(tmp_path / "uploads.sqlite3")
    rec = tmp_path / "recordings"
    old = _file(rec / "L1" / "t" / "t-00001.mp4", 3 * MB)
    newer = _file(rec / "L2" / "t" / "t-00001.mp4", 3 * MB)
    pending = _file(rec / "L3" / "t" / "t-00001.mp4", 3 * MB)
    for lesson, path in (("L1", old), ("L2", newer), ("L3", pending)):
        journal.enqueue(lesson, "t/t-00001.mp4", path, 3 * MB, "0" * 64)
    for item in journal.pending()[:2]:
        journal.verified(item.id)

    def free(_: pathlib.Path) -> int:
        on_disk = sum(p.stat().st_size for p in rec.rglob("*.mp4"))
        return 20 * MB - on_disk

    policy = DiskPolicy(rec, journal, reserve_bytes=10 * MB, free_bytes=free)
    check = policy.ensure(need_bytes=3 * MB)  # free 11 MB; needs 13 MB
    assert check.ok and check.evicted_files == 1
    assert not old.exists() and newer.exists() and pending.exists()

    check = policy.ensure(need_bytes=10 * MB)  # even evicting everything verified: short
    assert not check.ok and not newer.exists()
    assert pending.exists(), "a file storage has not confirmed must never be evicted"
    assert "Free space" in check.message and "reserve" in check.message
    assert [i.rel for i in journal.pending()] == ["t/t-00001.mp4"]
    journal.close()


def test_lesson_bytes_from_bitrates() -> None:
    assert lesson_bytes([2_000_000, 1_000_000], 2700, margin=1.0) == 3_000_000 // 8 * 2700


def test_controller_clock_keeps_its_offset_across_restarts(tmp_path: pathlib.Path) -> None:
    clock = ControllerClock(tmp_path)
    assert not clock.measured and clock.offset_s == 0.0
    clock.update(-120.0)
    again = ControllerClock(tmp_path)
    assert again.measured and again.offset_s == -120.0
    import time

    assert abs(again.now() - (time.time() - 120.0)) < 0.5
