"""The upload loop: takes due files from the journal and sends them, a few parts at once.

Failures back off exponentially with full jitter per file (1 s, 2 s, 4 s … up to 5 min),
so a storage outage is retried without a person and without a thundering herd when it
ends. A controller that comes back makes everything due at once. Uploads share one
token bucket, so their sum stays under the limit (lower while a lesson is live).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import ssl
import time
from collections.abc import Callable

import aiohttp

from edge_agent.errors import InsecureUpload, UploadFailed
from edge_agent.uploads.client import ChecksumRejected, UploadApi, UploadSessionLost
from edge_agent.uploads.journal import JournalItem, UploadJournal
from edge_agent.uploads.parts import (
    PART_CONCURRENCY,
    SEND_ERRORS,
    PartSender,
    check_concurrency,
)
from edge_agent.uploads.throttle import TokenBucket

log = logging.getLogger(__name__)

Credentials = Callable[[], tuple[str, str] | None]
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
FILE_CONCURRENCY = 2


def backoff_delay(attempts: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter for the ``attempts``-th failure (1-based)."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(attempts - 1, 0))
    return (rng or random).uniform(ceiling / 2, ceiling)


class Uploader:
    """Sends journalled files to the controller's storage until each is verified."""

    def __init__(
        self,
        journal: UploadJournal,
        classroom_id: str,
        credentials: Credentials,
        rate_limit: Callable[[], float | None] = lambda: None,
        controller_tls: ssl.SSLContext | None = None,
        part_concurrency: int = PART_CONCURRENCY,
    ) -> None:
        """``part_concurrency``: parts of one file in flight at once (1 to 16)."""
        self.journal = journal
        self._part_concurrency = check_concurrency(part_concurrency)
        self._tls = controller_tls
        self._classroom = classroom_id
        self._credentials = credentials
        self.bucket = TokenBucket(rate_limit)
        self._wake = asyncio.Event()
        # The loop the uploader runs on: kick() comes from the recorder's thread too, and
        # an asyncio.Event may only be set from its own loop.
        self._home: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.uploaded_files = 0
        self.uploaded_bytes = 0
        self.failures = 0
        self.last_error = ""
        self.parts_sent = 0
        self.on_verified: Callable[[JournalItem], None] | None = None
        self._stopping = False

    def kick(self, now: bool = False) -> None:
        """Look at the journal again; ``now`` also cancels every file's backoff.

        Safe from any thread (a segment closes on the recorder's thread).
        """
        if now:
            self.journal.retry_all_now()
        home = self._home
        try:
            on_home = asyncio.get_running_loop() is home
        except RuntimeError:
            on_home = False
        if home is None or on_home or home.is_closed():
            self._wake.set()  # not started (nothing waits), or already on the loop thread
        else:
            home.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        """Start the background loop."""
        self._home = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._loop(), name="uploader")

    async def stop(self) -> None:
        """Stop; an upload in flight resumes from its last acknowledged part next start.

        The flag matters: on Python 3.11 ``asyncio.wait_for`` can swallow a cancellation
        that lands just as its inner wait completes (a kick right before stop), and the
        loop would then carry on for ever.
        """
        if self._task is not None:
            self._stopping = True
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            self._stopping = False

    async def _loop(self) -> None:
        while not self._stopping:
            creds = self._credentials()
            due = self.journal.due(time.time(), limit=FILE_CONCURRENCY) if creds else []
            if due and creds:
                async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
                ) as http:
                    try:
                        api = UploadApi(http, creds[0], self._classroom, creds[1], self._tls)
                    except InsecureUpload as err:
                        self.failures += 1
                        self.last_error = str(err)
                        log.error("uploads held: %s", err)
                        await self._sleep(30.0)
                        continue
                    while due:
                        await asyncio.gather(*(self._attempt(api, item) for item in due))
                        creds = self._credentials()
                        if creds is None:
                            break
                        due = self.journal.due(time.time(), limit=FILE_CONCURRENCY)
                continue
            nxt = self.journal.next_due_at()
            wait = 30.0 if nxt is None else min(max(nxt - time.time(), 0.05), 30.0)
            await self._sleep(wait if creds else 1.0)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _attempt(self, api: UploadApi, item: JournalItem) -> None:
        try:
            await self.upload(api, item)
        except SEND_ERRORS as err:
            self.failures += 1
            self.last_error = f"{item.rel}: {err}"
            if isinstance(err, UploadSessionLost | ChecksumRejected):
                self.journal.clear_session(item.id)
            attempts = self.journal.get(item.id).attempts + 1
            delay = backoff_delay(attempts)
            self.journal.failed(item.id, str(err) or type(err).__name__, time.time() + delay)
            log.warning(
                "upload of %s/%s failed (%s); attempt %d, retrying in %.1f s",
                item.lesson_id,
                item.rel,
                err or type(err).__name__,
                attempts,
                delay,
            )

    async def upload(self, api: UploadApi, item: JournalItem) -> None:
        """One file: open (or resume), send the missing parts, complete, check the hash."""
        if not item.path.exists():
            self.journal.lost(item.id, f"{item.path} vanished before it was uploaded")
            log.error("%s vanished before upload; it is listed as lost", item.path)
            return
        session, part_size = item.session_id, item.part_size
        if session is None or part_size is None:
            doc = await api.open(item.lesson_id, item.rel, item.size, item.sha256)
            if doc["done"]:
                self._verified(item)
                return
            session, part_size = str(doc["upload_id"]), int(doc["part_size"])
            self.journal.set_session(item.id, session, part_size)
        count = max(1, math.ceil(item.size / part_size))
        done = self.journal.parts(item.id)
        todo = [n for n in range(1, count + 1) if n not in done]
        if todo:
            sender = PartSender(api, self.journal, self.bucket, self._part_concurrency, self._sent)
            await sender.send(item, session, part_size, todo)
        stored = self.journal.parts(item.id)
        missing = [n for n in range(1, count + 1) if n not in stored]
        if missing:
            raise UploadFailed(f"{item.rel}: parts {missing} were never acknowledged")
        result = await api.complete(session, list(stored.values()))
        if str(result.get("sha256")) != item.sha256:
            raise ChecksumRejected(
                f"storage answered SHA-256 {result.get('sha256')} for {item.rel}, "
                f"expected {item.sha256}"
            )
        self._verified(item)

    def _sent(self, size: int) -> None:
        self.parts_sent += 1
        self.uploaded_bytes += size

    def _verified(self, item: JournalItem) -> None:
        self.journal.verified(item.id)
        self.uploaded_files += 1
        log.info("%s/%s stored and verified", item.lesson_id, item.rel)
        if self.on_verified is not None:
            self.on_verified(item)
