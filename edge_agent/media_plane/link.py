"""A lesson's media kept up in its Janus room: started from the join's placement, and
started again on the same placement, with backoff, when the instance is lost.

A lost instance is usually dead: the controller then places the lesson elsewhere and sends
a new join, which replaces this link (``LessonSession.connect``) and ends its retries. The
retries are for the other cases: an instance that only stalled or restarted, or a
controller that cannot be reached to say where to go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from edge_agent.media_plane.exceptions import JanusMediaError
from edge_agent.media_plane.lesson import JanusLessonMedia
from protocols.messages import JanusPlacement

log = logging.getLogger(__name__)

# Seconds between attempts on the same placement: quick at first (an instance that
# restarts is back in a second or two), then no more than every 8 s.
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)

MediaFactory = Callable[[JanusPlacement], JanusLessonMedia]
MediaUp = Callable[[JanusLessonMedia], None]


class JanusLink:
    """One placement's media (``media`` while up); ``on_up`` hears of each (re)start,
    ``on_down`` of each loss."""

    def __init__(
        self,
        placement: JanusPlacement,
        make: MediaFactory,
        *,
        on_up: MediaUp,
        on_down: Callable[[], None],
        backoff_s: tuple[float, ...] = BACKOFF_S,
    ) -> None:
        self.placement = placement
        self._make = make
        self._on_up = on_up
        self._on_down = on_down
        self._backoff_s = backoff_s
        self.media: JanusLessonMedia | None = None
        self.attempts = 0  # re-joins tried since the last loss
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join the room once (raises ``JanusMediaError``), then watch for its loss."""
        self.media = await self._start_media()
        self._on_up(self.media)
        self._task = asyncio.create_task(
            self._keep(), name=f"janus-link-{self.media.join.lesson_id}"
        )
        self._task.add_done_callback(_log_failure)

    async def _start_media(self) -> JanusLessonMedia:
        media = self._make(self.placement)
        try:
            await media.start()
        except BaseException:
            # start() may fail before the media cleans up after itself (session create).
            with contextlib.suppress(JanusMediaError):
                await media.stop()
            raise
        return media

    async def _keep(self) -> None:
        while True:
            assert self.media is not None
            await self.media.lost.wait()
            self._on_down()
            lost, self.media = self.media, None
            await lost.stop()  # quick: the instance is gone, nothing is waited for
            self.attempts = 0
            while self.media is None:
                delay = self._backoff_s[min(self.attempts, len(self._backoff_s) - 1)]
                await asyncio.sleep(delay)
                self.attempts += 1
                try:
                    self.media = await self._start_media()
                except JanusMediaError as err:
                    log.warning(
                        "lesson %s: re-joining room %d (attempt %d) failed: %s",
                        lost.join.lesson_id,
                        self.placement.room,
                        self.attempts,
                        err,
                    )
            log.info(
                "lesson %s: back in room %d after %d attempt(s)",
                lost.join.lesson_id,
                self.placement.room,
                self.attempts,
            )
            self._on_up(self.media)

    async def stop(self) -> None:
        """Stop retrying and leave the room."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.media is not None:
            media, self.media = self.media, None
            await media.stop()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())
