"""One lesson's relay as the controller sees it when the relay runs in its own process.

Signalling calls go to the relay process and wait for its reply. Figures (feeds, counters,
frame ages) are read from the last ones it sent, at most a second old, so they can be read
from any thread and never wait on a busy relay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from controller.relay.exceptions import RelayUnavailable
from controller.relay.ipc import (
    Answer,
    AnswerViewer,
    Call,
    CloseLesson,
    CloseViewer,
    Disconnect,
    FeedAsked,
    LessonFigures,
    Reply,
)
from controller.relay.room import FeedRef, SignallingError
from protocols.messages import TrackMid

log = logging.getLogger(__name__)

OnClose = Callable[[], Awaitable[None]]


class Caller(Protocol):
    """How a proxy reaches the relay process (``RelayProcess``)."""

    async def call(self, call: Call) -> Reply:
        """Send one call and return its reply; RelayUnavailable if it cannot."""

    def forget(self, lesson_id: str) -> None:
        """The lesson's relay is closed."""


@dataclass(frozen=True)
class FeedView:
    """One feed's figures as the relay process last sent them."""

    source_classroom: str
    track: str
    kind: str
    frames_in: int
    bytes_in: int
    subscribers: int
    keyframe_requests: int
    dropped: int
    last_frame: float | None


def _raise_for(reply: Reply) -> Reply:
    if reply.error_kind == "signalling":
        raise SignallingError(reply.error)
    if reply.error_kind == "value":
        raise ValueError(reply.error)
    if reply.error_kind is not None:  # logged there with its traceback
        raise ValueError(f"the relay process could not do it: {reply.error}")
    return reply


class RelayProxy:
    """A lesson's relay in the relay process, with ``LessonRelay``'s interface."""

    def __init__(self, lesson_id: str, process: Caller) -> None:
        self.lesson_id = lesson_id
        self._process = process
        self._feeds: list[FeedView] = []
        self._on_close: dict[str, OnClose | None] = {}
        self._closing: dict[str, asyncio.Task[None]] = {}
        self.closed = False

    # --- figures, from the relay process's last report ------------------------------

    def update(self, figures: LessonFigures) -> None:
        """New figures from the relay process."""
        self._feeds = [
            FeedView(
                f.classroom,
                f.track,
                f.kind,
                f.frames_in,
                f.bytes_in,
                f.subscribers,
                f.keyframe_requests,
                f.dropped,
                f.last_frame,
            )
            for f in figures.feeds
        ]

    @property
    def feeds(self) -> list[FeedView]:
        """Every feed in the lesson."""
        return list(self._feeds)

    @property
    def viewers(self) -> list[str]:
        """The ids of the open console viewers."""
        return list(self._on_close)

    def frame_age_s(self, source_classroom: str, track: str) -> float | None:
        """Seconds since the relay last got a frame of this feed; None if it never did."""
        for feed in self._feeds:
            if (feed.source_classroom, feed.track) == (source_classroom, track):
                return None if feed.last_frame is None else time.monotonic() - feed.last_frame
        return None

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-feed counters, keyed ``classroom/track`` (as ``LessonRelay.stats()``)."""
        return {
            f"{f.source_classroom}/{f.track}": {
                "frames_in": f.frames_in,
                "bytes_in": f.bytes_in,
                "subscribers": f.subscribers,
                "keyframe_requests": f.keyframe_requests,
                "dropped": f.dropped,
            }
            for f in list(self._feeds)
        }

    # --- signalling, in the relay process ---------------------------------------------

    async def _call(self, call: Call) -> Reply:
        reply = _raise_for(await self._process.call(call))
        figures = reply.lessons.get(self.lesson_id)
        if figures is not None:
            self.update(figures)
        return reply

    async def answer(self, classroom_id: str, sdp: str, tracks: list[TrackMid]) -> str:
        """Accept an agent's offer; replaces any earlier connection from that classroom."""
        reply = await self._call(
            Answer(lesson=self.lesson_id, classroom=classroom_id, sdp=sdp, tracks=tracks)
        )
        return reply.sdp or ""

    async def disconnect(self, classroom_id: str) -> None:
        """Close one classroom's connection; its feeds wait for it to come back."""
        await self._call(Disconnect(lesson=self.lesson_id, classroom=classroom_id))

    async def answer_viewer(
        self,
        viewer_id: str,
        sdp: str,
        feeds: list[FeedRef],
        on_close: OnClose | None = None,
    ) -> str:
        """Answer a console viewer's receive-only offer (see ``LessonRelay.answer_viewer``)."""
        asked = [FeedAsked(classroom=f.classroom, track=f.track, kind=f.kind) for f in feeds]
        reply = await self._call(
            AnswerViewer(lesson=self.lesson_id, viewer=viewer_id, sdp=sdp, feeds=asked)
        )
        self._on_close[viewer_id] = on_close
        return reply.sdp or ""

    async def close_viewer(self, viewer_id: str) -> bool:
        """Close a console viewer's connection; False if there was none by that id."""
        reply = await self._call(CloseViewer(lesson=self.lesson_id, viewer=viewer_id))
        # The relay process said so before it replied; its bookkeeping finishes first,
        # as it does in process.
        closing = self._closing.pop(viewer_id, None)
        if closing is not None:
            await asyncio.gather(closing, return_exceptions=True)
        return bool(reply.closed)

    def viewer_closed(self, viewer_id: str) -> None:
        """The relay process closed a viewer: run its ``on_close`` (once)."""
        if viewer_id not in self._on_close:
            return
        on_close = self._on_close.pop(viewer_id)
        if on_close is None:
            return
        task = asyncio.create_task(self._run_on_close(viewer_id, on_close))
        self._closing[viewer_id] = task
        task.add_done_callback(lambda _: self._closing.pop(viewer_id, None))

    async def _run_on_close(self, viewer_id: str, on_close: OnClose) -> None:
        try:
            await on_close()
        except Exception:  # the viewer is closed; what failed is its bookkeeping
            log.exception("lesson %s: viewer %s: on_close failed", self.lesson_id, viewer_id)

    def lost(self) -> None:
        """The relay process died: every connection and feed of the lesson went with it."""
        self._feeds = []
        for viewer in list(self._on_close):
            self.viewer_closed(viewer)

    async def close(self) -> None:
        """Close every connection (agents' and viewers') and feed."""
        if self.closed:
            return
        self.closed = True
        try:
            await self._call(CloseLesson(lesson=self.lesson_id))
        except RelayUnavailable as err:
            # The request is on its way: a relay process that was only busy closes the
            # lesson when it gets to it, and one that died took the lesson with it.
            log.warning("lesson %s: relay not closed yet: %s", self.lesson_id, err)
        finally:
            self._process.forget(self.lesson_id)
            self.lost()  # viewers the relay process could not report closed
        await asyncio.gather(*list(self._closing.values()), return_exceptions=True)
