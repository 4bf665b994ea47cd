"""Delivery lessons on demand (专递课堂 by video) on the agent: the room plays a recorded
lesson from the resource library instead of receiving a live lead.

The controller's join carries a ``PlaybackSource``. The file is fetched at once (the
lesson may be minutes away), then at the lesson's start it plays on the room's screens
and speakers as the join's subscriptions (the recorded room's teacher camera and sound),
through the same outputs as live media: layouts, labels, playout and the echo canceller's
reference. It stops at the file's end or the lesson's, and the lesson's report says how
much played (``PlaybackReport``). Nothing is published or recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import av

from edge_agent.delivery.fetch import FetchError, fetch_item
from edge_agent.delivery.player import FilePlayer
from edge_agent.sources import MediaSource
from protocols.messages import Body, JoinLesson, LessonReport, PlaybackReport, Subscription

log = logging.getLogger(__name__)

FETCH_RETRY_S = 5.0
REPORT_AFTER_END_S = 60.0  # no controller to end it: report this long after its end


class Outputs(Protocol):
    """The room's outputs (``edge_agent.room.outputs.RoomOutputs``)."""

    def lesson_started(self, join: JoinLesson, sources: dict[str, MediaSource]) -> None:
        """A lesson's media begins."""

    def lesson_ended(self, lesson_id: str) -> None:
        """The lesson is over."""

    def on_decoded(self, sub: Subscription, frame: av.VideoFrame | av.AudioFrame) -> None:
        """A frame to show or play."""


class _Play:
    """One delivery lesson's fetch, play and report."""

    def __init__(self, join: JoinLesson) -> None:
        assert join.playback is not None
        self.join = join
        self.item = join.playback
        self.path: pathlib.Path | None = None
        self.player: FilePlayer | None = None
        self.task: asyncio.Task[None] | None = None
        self.error = ""
        self.reported = False
        self.playing = False


class PlaybackLessons:
    """The delivery lessons on demand this room was joined to."""

    def __init__(
        self,
        state_dir: pathlib.Path,
        classroom_id: str,
        now: Callable[[], float],
        credentials: Callable[[], tuple[str, str] | None],
        tls: ssl.SSLContext | None,
        outputs: Outputs,
        sources: dict[str, MediaSource],
        send: Callable[[Body], Awaitable[bool]],
    ) -> None:
        self._dir = state_dir / "playback"
        self._classroom = classroom_id
        self._now = now
        self._credentials = credentials
        self._tls = tls
        self._outputs = outputs
        self._sources = sources
        self._send = send
        self._plays: dict[str, _Play] = {}
        self.plays_started = 0

    def has(self, lesson_id: str) -> bool:
        """Whether ``lesson_id`` is a delivery lesson on demand joined here."""
        return lesson_id in self._plays

    @property
    def playing(self) -> bool:
        """Whether a recording plays in the room now."""
        return any(p.playing for p in self._plays.values())

    async def join(self, join: JoinLesson) -> None:
        """Fetch the item now and play it at the lesson's start (new terms: the new end)."""
        play = self._plays.get(join.lesson_id)
        if play is not None:
            play.join = join  # new times: the running task reads them
            return
        play = self._plays[join.lesson_id] = _Play(join)
        play.task = asyncio.create_task(self._run(play), name=f"playback-{join.lesson_id}")

    async def leave(self, lesson_id: str) -> None:
        """The controller ended the lesson: stop playing and report."""
        play = self._plays.get(lesson_id)
        if play is None:
            return
        if play.task is not None and not play.task.done():
            play.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await play.task
        await self._finish(play)

    async def close(self) -> None:
        """The agent stops: stop whatever plays (no report: it may come back)."""
        for play in list(self._plays.values()):
            if play.task is not None:
                play.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await play.task
            self._stop_player(play)

    # --- one lesson ----------------------------------------------------------------------

    async def _run(self, play: _Play) -> None:
        await self._fetch(play)
        if play.path is None:
            return
        wait = play.join.start_at - self._now()
        if wait > 0:
            await asyncio.sleep(wait)
        if self._now() >= play.join.end_at:
            play.error = play.error or "the file was not ready before the lesson ended"
            return
        self._start_player(play)
        while self._now() < play.join.end_at:
            assert play.player is not None
            if play.player.finished.is_set():
                break
            await asyncio.sleep(min(0.5, max(0.01, play.join.end_at - self._now())))
        self._stop_player(play)
        # The controller ends the lesson; without one, report a while after its end.
        await asyncio.sleep(max(0.0, play.join.end_at + REPORT_AFTER_END_S - self._now()))
        await self._finish(play)

    async def _fetch(self, play: _Play) -> None:
        lesson = play.join.lesson_id
        dest = self._dir / f"{lesson}.mp4"
        while self._now() < play.join.end_at:
            creds = self._credentials()
            if creds is None:
                play.error = "no upload credentials yet (the agent has not registered)"
            else:
                try:
                    play.path = await fetch_item(
                        creds[0],
                        self._classroom,
                        creds[1],
                        play.item.route,
                        dest,
                        play.item.sha256,
                        self._tls,
                    )
                    play.error = ""
                    return
                except FetchError as err:
                    play.error = str(err)
            log.warning("playback of %s: %s; trying again", lesson, play.error)
            await asyncio.sleep(FETCH_RETRY_S)

    def _start_player(self, play: _Play) -> None:
        assert play.path is not None
        loop = asyncio.get_running_loop()
        subs: dict[str, Subscription] = {s.kind: s for s in play.join.subscribe}

        def on_loop(kind: str, frame: av.VideoFrame | av.AudioFrame) -> None:
            sub = subs.get(kind)
            if sub is not None and play.playing:
                self._outputs.on_decoded(sub, frame)

        def deliver(kind: str, frame: av.VideoFrame | av.AudioFrame) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: stopping
                loop.call_soon_threadsafe(on_loop, kind, frame)

        self._outputs.lesson_started(play.join, self._sources)
        play.player = FilePlayer(play.path, deliver, name=f"playback-{play.join.lesson_id}")
        play.playing = True
        play.player.start()
        self.plays_started += 1
        log.info("playback of %s: %s plays now", play.join.lesson_id, play.item.title)

    def _stop_player(self, play: _Play) -> None:
        if play.player is not None:
            play.player.stop()
            if play.player.error:
                play.error = play.player.error
        if play.playing:
            play.playing = False
            self._outputs.lesson_ended(play.join.lesson_id)

    async def _finish(self, play: _Play) -> None:
        self._stop_player(play)
        if play.reported:
            return
        player = play.player
        report = PlaybackReport(
            item_id=play.item.item_id,
            played_s=round(player.played_s, 3) if player is not None else 0.0,
            duration_s=play.item.duration_s,
            started_at=self._controller_time(player.started_at) if player else None,
            error=play.error[:500],
        )
        lesson = play.join.lesson_id
        play.reported = await self._send(LessonReport(lesson_id=lesson, tracks=[], playback=report))
        log.info(
            "playback of %s: played %.1f of %.1f s%s",
            lesson,
            report.played_s,
            report.duration_s,
            f" ({report.error})" if report.error else "",
        )
        if play.path is not None:
            play.path.unlink(missing_ok=True)  # fetched for this lesson only

    def _controller_time(self, wall: float | None) -> float | None:
        """A wall-clock time of this PC on the controller's clock."""
        if wall is None:
            return None
        return wall + (self._now() - time.time())
