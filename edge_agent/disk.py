"""Disk policy: room for the next lesson, made only by evicting what storage has verified.

Before a lesson the agent needs bitrate × duration plus a reserve of free space. When it
is short it deletes local segments that storage has already confirmed, oldest first, and
nothing else. If that is still not enough, it raises an alert before the lesson, so a
technician can act while there is time; the lesson is recorded regardless.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.profile import HardwareProfile
from edge_agent.uploads.journal import UploadJournal
from protocols.messages import JoinLesson

log = logging.getLogger(__name__)

DEFAULT_RESERVE_BYTES = 2 * 1024**3
RECEIVED_VIDEO_BPS = 2_000_000  # estimate for a remote camera when sizing the disk
RECEIVED_AUDIO_BPS = 64_000


@dataclass(frozen=True)
class DiskCheck:
    """The outcome of a check: is there room, and what was evicted to make it."""

    ok: bool
    free_bytes: int
    need_bytes: int
    reserve_bytes: int
    evicted_files: int
    evicted_bytes: int
    message: str


def lesson_bytes(bitrates_bps: list[int], seconds: float, margin: float = 1.2) -> int:
    """Bytes a lesson's recording will take: the tracks' bitrates over its length."""
    return int(sum(bitrates_bps) / 8 * max(seconds, 0.0) * margin)


def lesson_need(profile: HardwareProfile, join: JoinLesson) -> int:
    """Bytes a lesson will record here: its local devices and the remote tracks."""
    rates = []
    for name in join.publish:
        try:
            rates.append(profile.device(name).bitrate)
        except KeyError:
            continue
    for sub in join.subscribe:
        rates.append(RECEIVED_VIDEO_BPS if sub.kind == "video" else RECEIVED_AUDIO_BPS)
    return lesson_bytes(rates, join.end_at - join.start_at)


class DiskPolicy:
    """Checks free space and evicts verified recordings when needed."""

    def __init__(
        self,
        recordings_dir: pathlib.Path,
        journal: UploadJournal,
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
        free_bytes: Callable[[pathlib.Path], int] | None = None,
    ) -> None:
        self.dir = recordings_dir
        self.journal = journal
        self.reserve_bytes = reserve_bytes
        self._free = free_bytes or (lambda p: shutil.disk_usage(p).free)
        self.evicted_files = 0
        self.evicted_bytes = 0

    def free(self) -> int:
        """Free bytes on the recordings' file system."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return self._free(self.dir)

    def ensure(self, need_bytes: int) -> DiskCheck:
        """Make ``need_bytes`` plus the reserve free, evicting verified files if needed."""
        target = need_bytes + self.reserve_bytes
        files = freed = 0
        free = self.free()
        if free < target:
            for item in self.journal.evictable():
                try:
                    size = item.path.stat().st_size
                    item.path.unlink()
                except FileNotFoundError:
                    size = 0
                self.journal.evicted(item.id)
                files += 1
                freed += size
                free = self.free()
                if free >= target:
                    break
        self.evicted_files += files
        self.evicted_bytes += freed
        if files:
            log.info(
                "evicted %d uploaded and verified file(s), %d bytes, to make room", files, freed
            )
        ok = free >= target
        message = (
            ""
            if ok
            else (
                f"disk short on {self.dir}: {free / 1e9:.2f} GB free, the lesson needs "
                f"{need_bytes / 1e9:.2f} GB plus a {self.reserve_bytes / 1e9:.2f} GB reserve, "
                f"and only recordings storage has not confirmed are left. Free space on the "
                f"disk, or check why uploads are not going through (classroom-agent status)"
            )
        )
        return DiskCheck(ok, free, need_bytes, self.reserve_bytes, files, freed, message)
