"""Uploads finished lesson recordings to the controller's storage, checksum-verified.

A lesson directory with a manifest and no ``uploaded`` marker is pending; pending lessons
are retried with exponential backoff and jitter, across agent restarts, until storage
confirms every segment's SHA-256.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import random
from collections.abc import Callable

import aiohttp

from edge_agent.errors import UploadFailed
from edge_agent.recording.manifest import MANIFEST_NAME, read_manifest

log = logging.getLogger(__name__)

UPLOADED_MARKER = "uploaded"


class Uploader:
    """Finds pending lesson recordings and pushes them to the controller."""

    def __init__(
        self, recordings_dir: pathlib.Path, credentials: Callable[[], tuple[str, str] | None]
    ) -> None:
        self._dir = recordings_dir
        self._credentials = credentials
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.uploaded_files = 0
        self.failures = 0
        self.last_error = ""

    def pending(self) -> list[pathlib.Path]:
        """Lesson directories with a manifest that storage has not confirmed yet."""
        if not self._dir.exists():
            return []
        return sorted(
            p.parent
            for p in self._dir.glob(f"*/{MANIFEST_NAME}")
            if not (p.parent / UPLOADED_MARKER).exists()
        )

    def kick(self) -> None:
        """Try now rather than at the next backoff step."""
        self._wake.set()

    async def start(self) -> None:
        """Start the background upload loop."""
        self._task = asyncio.create_task(self._loop(), name="uploader")

    async def stop(self) -> None:
        """Stop the loop (an upload in flight is resumed next start)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        backoff = 1.0
        while True:
            pending = self.pending()
            creds = self._credentials()
            if pending and creds is not None:
                try:
                    async with aiohttp.ClientSession(
                        timeout=aiohttp.ClientTimeout(total=None, sock_read=60)
                    ) as http:
                        for lesson_dir in pending:
                            await self.upload_lesson(http, lesson_dir, *creds)
                    backoff = 1.0
                except (UploadFailed, aiohttp.ClientError, OSError, TimeoutError) as err:
                    self.failures += 1
                    self.last_error = str(err)
                    log.warning("upload failed (%s); retrying in %.0f s", err, backoff)
                    await self._sleep(backoff * random.uniform(0.8, 1.2))
                    backoff = min(backoff * 2, 300.0)
                    continue
            await self._sleep(30.0)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def upload_lesson(
        self, http: aiohttp.ClientSession, lesson_dir: pathlib.Path, base_url: str, token: str
    ) -> None:
        """Upload every segment, then the manifest; mark the lesson uploaded."""
        manifest = read_manifest(lesson_dir / MANIFEST_NAME)
        prefix = f"{base_url}/api/v1/recordings/{manifest.lesson_id}/{manifest.classroom_id}"
        headers = {"Authorization": f"Bearer {token}"}
        for track in manifest.tracks:
            key = (
                track.track
                if track.direction == "send"
                else (f"{track.source_classroom}-{track.track}")
            )
            for seg in track.segments:
                path = lesson_dir / key / seg.name
                url = f"{prefix}/{key}/{seg.name}"
                with open(path, "rb") as fh:
                    async with http.put(
                        url,
                        data=fh,
                        headers={
                            **headers,
                            "X-Content-SHA256": seg.sha256,
                            "Content-Type": "video/mp4",
                        },
                    ) as resp:
                        if resp.status not in (200, 201):
                            raise UploadFailed(
                                f"{url}: HTTP {resp.status}: {(await resp.text())[:300]}"
                            )
                self.uploaded_files += 1
        body = (lesson_dir / MANIFEST_NAME).read_bytes()
        async with http.put(
            f"{prefix}/manifest.json",
            data=body,
            headers={**headers, "Content-Type": "application/json"},
        ) as resp:
            if resp.status not in (200, 201):
                raise UploadFailed(
                    f"manifest of {manifest.lesson_id}: HTTP {resp.status}: "
                    f"{(await resp.text())[:300]}"
                )
        (lesson_dir / UPLOADED_MARKER).write_text("confirmed by storage\n")
        log.info("lesson %s uploaded and verified", manifest.lesson_id)
