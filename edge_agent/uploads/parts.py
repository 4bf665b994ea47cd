"""Sending one file's parts: a few at a time, each journalled once storage acknowledged it.

Parts go concurrently (as boto3's transfer manager sends them), at most ``concurrency``
in flight, so at most that many parts are read into memory at once. A part is recorded in
the journal only after storage answered its ETag, whatever order the answers come in, so
an interruption at any moment resumes without sending an acknowledged part again. The
first part that fails stops new parts from starting, and the failure is raised once the
parts in flight have ended: nothing of an attempt is still sending (or journalling) once
the attempt is over.

Each part's CRC32 is computed as it is read, sent with the part (storage refuses bytes
that do not match it: the part fails and is sent again on the next attempt) and journalled
with its ETag for the complete call. A part's URL is asked for once its CRC32 is known,
since S3 signs the checksum into it; parts read at about the same time share one request.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from edge_agent.errors import UploadFailed
from edge_agent.uploads.client import UploadApi
from edge_agent.uploads.journal import JournalItem, UploadJournal
from edge_agent.uploads.throttle import TokenBucket
from protocols.uploads import part_crc32

log = logging.getLogger(__name__)

PART_CONCURRENCY = 4
MAX_PART_CONCURRENCY = 16
CHUNK = 256 * 1024
# What a part may fail with: the attempt is given up and retried after a backoff.
SEND_ERRORS = (UploadFailed, aiohttp.ClientError, OSError, TimeoutError)


def check_concurrency(n: int) -> int:
    """``n`` if it is a usable number of parts in flight; ``ValueError`` naming it if not."""
    if not 1 <= n <= MAX_PART_CONCURRENCY:
        raise ValueError(f"parts in flight per file must be 1 to {MAX_PART_CONCURRENCY}, not {n}")
    return n


class PartSender:
    """Sends the parts of one file that storage has not acknowledged yet."""

    def __init__(
        self,
        api: UploadApi,
        journal: UploadJournal,
        bucket: TokenBucket,
        concurrency: int,
        on_part: Callable[[int], None],
    ) -> None:
        self._api = api
        self._journal = journal
        self._bucket = bucket
        self._concurrency = check_concurrency(concurrency)
        self._on_part = on_part

    async def send(
        self, item: JournalItem, session: str, part_size: int, numbers: list[int]
    ) -> None:
        """Send parts ``numbers``; raises the first failure once none is in flight."""
        targets = _Targets(self._api, item.rel, session)
        todo = deque(numbers)
        failures: list[Exception] = []

        async def lane() -> None:
            while not failures and todo:
                n = todo.popleft()
                try:
                    offset = (n - 1) * part_size
                    size = min(part_size, item.size - offset)
                    body, crc = await asyncio.to_thread(_read, item.path, offset, size)
                    if failures:
                        return  # another part failed meanwhile: start nothing new
                    target = await targets.get(n, crc)
                    if failures:
                        return
                    await self._send_one(item, n, target, body, crc)
                except SEND_ERRORS as err:
                    failures.append(err)

        # A failure stops new parts from starting; the parts in flight finish (or fail on
        # their own timeouts), so what storage acknowledged is kept. Cancelling the attempt
        # (stop) cancels every lane at once.
        async with asyncio.TaskGroup() as group:
            for _ in range(min(self._concurrency, len(numbers))):
                group.create_task(lane())
        if failures:
            for other in failures[1:]:
                log.warning("%s: another part failed too: %s", item.rel, other)
            raise failures[0]

    async def _send_one(
        self, item: JournalItem, n: int, target: dict[str, Any], body: bytes, crc: str
    ) -> None:
        size = len(body)
        # The CRC32 goes with the part where the controller asked for it: S3 signed it
        # into the URL. An upload opened without checksums (before this build) takes none.
        sent = target.get("crc32")
        if sent is not None and sent != crc:
            raise UploadFailed(
                f"{item.rel}: part {n}: the controller signed CRC32 {sent}, the part has {crc}"
            )
        etag = await self._api.put_part(
            str(target["url"]),
            bool(target["auth"]),
            _paced(body, self._bucket),
            size,
            crc32=crc if sent is not None else None,
        )
        # Only now, with storage's answer in hand. No await between the answer and this
        # write, so a cancelled attempt either recorded the part or will send it again.
        self._journal.part_done(item.id, n, etag, size, crc)
        self._on_part(size)


class _Targets:
    """Part URLs asked for just before use, once each part's CRC32 is known.

    Presigned part URLs are short-lived (minutes); asked for all at once, the later parts
    of a large file sent under a live lesson's limit would find theirs expired. Parts that
    ask while a request is out are asked for together in the next one.
    """

    def __init__(self, api: UploadApi, rel: str, session: str) -> None:
        self._api = api
        self._rel = rel
        self._session = session
        self._waiting: dict[int, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._lock = asyncio.Lock()

    async def get(self, n: int, crc32: str) -> dict[str, Any]:
        """Part ``n``'s target (its URL signed with ``crc32`` where storage wants it)."""
        mine: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[n] = (crc32, mine)
        async with self._lock:
            if not mine.done():
                batch, self._waiting = self._waiting, {}
                try:
                    await self._ask(batch)
                except BaseException as err:
                    # The other lanes of the batch fail with it (or stop, if cancelled).
                    for _, fut in batch.values():
                        if fut is mine or fut.done():
                            continue
                        if isinstance(err, Exception):
                            fut.set_exception(err)
                        else:
                            fut.cancel()
                    raise
        return mine.result()

    async def _ask(self, batch: dict[int, tuple[str, asyncio.Future[dict[str, Any]]]]) -> None:
        asked = sorted(batch)
        answered = await self._api.targets(
            self._session, asked, {n: crc for n, (crc, _) in batch.items()}
        )
        if sorted(_number(t) for t in answered) != asked:
            raise UploadFailed(
                f"{self._rel}: asked where to send parts {asked}, the controller "
                f"answered {[t.get('n') for t in answered]}"
            )
        for target in answered:
            batch[_number(target)][1].set_result(target)


def _number(target: dict[str, Any]) -> int:
    n = target.get("n")
    if not isinstance(n, int) or isinstance(n, bool):
        raise UploadFailed(f"the controller answered a part target without a number: {target}")
    return n


def _read(path: pathlib.Path, offset: int, size: int) -> tuple[bytes, str]:
    """A part's bytes and their CRC32 (in a worker thread: both are blocking)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(size)
    if len(data) != size:
        raise UploadFailed(f"{path}: expected {size} bytes at {offset}, read {len(data)}")
    return data, part_crc32(data)


async def _paced(body: bytes, bucket: TokenBucket) -> AsyncIterator[bytes]:
    # Every chunk asks the shared bucket, so a limit that starts mid-part (a lesson goes
    # live) holds within one chunk, and the sum of all parts in flight stays under it.
    view = memoryview(body)
    for start in range(0, len(body), CHUNK):
        chunk = view[start : start + CHUNK]
        await bucket.take(len(chunk))
        yield bytes(chunk)
