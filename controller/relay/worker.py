"""The relay process: every lesson's ``LessonRelay``, served to the controller over a socket.

Started by ``controller.relay.process.RelayProcess`` as ``python -m controller.relay.worker
--fd N``; it imports the relay and aiortc only (no API, console or database). It exits
when the controller closes the socket, and the kernel kills it if the controller dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time

from controller.relay.ipc import (
    Answer,
    AnswerViewer,
    CloseLesson,
    CloseViewer,
    Disconnect,
    FeedFigures,
    Figures,
    FrameError,
    LessonFigures,
    Reply,
    Request,
    Snapshot,
    ViewerClosed,
    encode,
    read_request,
)
from controller.relay.room import FeedRef, LessonRelay, SignallingError
from protocols.media import aiortc_seam

log = logging.getLogger("controller.relay.worker")

FIGURES_S = 1.0  # how often the controller hears every feed's counters unasked
CLOSE_WAIT_S = 5.0
_PR_SET_PDEATHSIG = 1


def figures_of(relay: LessonRelay) -> LessonFigures:
    """One lesson's feeds and viewers as they stand now."""
    now = time.monotonic()
    feeds = []
    for feed in relay.feeds:
        age = relay.frame_age_s(feed.source_classroom, feed.track)
        feeds.append(
            FeedFigures(
                classroom=feed.source_classroom,
                track=feed.track,
                kind=feed.kind,
                frames_in=feed.frames_in,
                bytes_in=feed.bytes_in,
                subscribers=feed.subscribers,
                keyframe_requests=feed.keyframe_requests,
                dropped=feed.dropped,
                last_frame=None if age is None else now - age,
            )
        )
    return LessonFigures(feeds=feeds, viewers=relay.viewers)


class RelayWorker:
    """Answers the controller's requests with this process's lesson relays."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self.relays: dict[str, LessonRelay] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, message: Reply | Figures | ViewerClosed) -> None:
        """Queue one message to the controller (whole frames: they never interleave)."""
        if not self._writer.is_closing():
            self._writer.write(encode(message))

    async def serve(self, reader: asyncio.StreamReader) -> None:
        """Handle requests until the controller goes away."""
        figures = asyncio.create_task(self._push_figures(), name="relay-figures")
        try:
            while (request := await read_request(reader)) is not None:
                # Concurrently: an answer waits for ICE gathering, a snapshot must not.
                task = asyncio.create_task(self._handle(request))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            figures.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(figures, *self._tasks, return_exceptions=True)
            await self.close_all()

    async def close_all(self) -> None:
        """Close every lesson's relay (the controller has gone)."""
        relays, self.relays = list(self.relays.values()), {}
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(r.close() for r in relays), return_exceptions=True),
                CLOSE_WAIT_S,
            )

    async def _push_figures(self) -> None:
        while True:
            await asyncio.sleep(FIGURES_S)
            self.send(Figures(lessons={lid: figures_of(r) for lid, r in self.relays.items()}))
            await self._writer.drain()

    async def _handle(self, request: Request) -> None:
        try:
            reply = await self._call(request)
        except SignallingError as err:
            reply = Reply(id=request.id, error_kind="signalling", error=str(err))
        except ValueError as err:
            reply = Reply(id=request.id, error_kind="value", error=str(err))
        except Exception as err:  # the relay carries on; the controller hears what failed
            log.exception("relay request %s failed", request.call.op)
            reply = Reply(
                id=request.id, error_kind="internal", error=f"{type(err).__name__}: {err}"
            )
        self.send(reply)

    def _relay(self, lesson: str) -> LessonRelay:
        relay = self.relays.get(lesson)
        if relay is None:
            relay = self.relays[lesson] = LessonRelay(lesson)
        return relay

    def _touched(self, lesson: str) -> dict[str, LessonFigures]:
        relay = self.relays.get(lesson)
        return {lesson: figures_of(relay)} if relay is not None else {}

    async def _call(self, request: Request) -> Reply:
        call, rid = request.call, request.id
        if isinstance(call, Answer):
            sdp = await self._relay(call.lesson).answer(call.classroom, call.sdp, call.tracks)
            return Reply(id=rid, sdp=sdp, lessons=self._touched(call.lesson))
        if isinstance(call, Disconnect):
            if call.lesson in self.relays:
                await self.relays[call.lesson].disconnect(call.classroom)
            return Reply(id=rid, lessons=self._touched(call.lesson))
        if isinstance(call, AnswerViewer):
            lesson, viewer = call.lesson, call.viewer

            async def closed() -> None:
                self.send(ViewerClosed(lesson=lesson, viewer=viewer))

            feeds = [FeedRef(f.classroom, f.track, f.kind) for f in call.feeds]
            # A lesson no agent has offered to yet has no feeds: the relay says so.
            watched = self.relays.get(lesson) or LessonRelay(lesson)
            sdp = await watched.answer_viewer(viewer, call.sdp, feeds, on_close=closed)
            return Reply(id=rid, sdp=sdp, lessons=self._touched(lesson))
        if isinstance(call, CloseViewer):
            open_relay = self.relays.get(call.lesson)
            closed_now = open_relay is not None and await open_relay.close_viewer(call.viewer)
            return Reply(id=rid, closed=closed_now, lessons=self._touched(call.lesson))
        if isinstance(call, CloseLesson):
            gone = self.relays.pop(call.lesson, None)
            if gone is not None:
                await gone.close()
            return Reply(id=rid, lessons={call.lesson: LessonFigures()} if gone else {})
        assert isinstance(call, Snapshot)
        return Reply(id=rid, lessons={lid: figures_of(r) for lid, r in self.relays.items()})


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when the controller dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent:  # it died before the line above took effect
        sys.exit(0)


async def _run(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    worker = RelayWorker(writer)
    try:
        await worker.serve(reader)
    except FrameError as err:
        log.error("relay process: the controller's link is broken (%s); exiting", err)
    finally:
        writer.close()


def main(argv: list[str] | None = None) -> None:
    """Serve lesson relays on the inherited socket until the controller goes."""
    parser = argparse.ArgumentParser(prog="controller.relay.worker")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the controller")
    parser.add_argument("--parent", type=int, required=True, help="the controller's pid")
    parser.add_argument("--media-address", action="append", default=[])
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    # A stop signal to the whole group or cgroup (Ctrl-C, systemd) reaches us too; the
    # controller decides when the relay stops, and the kernel kills it if the controller dies.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s relay[%(process)d] %(levelname)s %(message)s"
    )
    aiortc_seam.size_receive_buffers()  # the relay receives every room's keyframes
    if args.media_address:
        aiortc_seam.pin_host_addresses(args.media_address)
    asyncio.run(_run(args.fd))


if __name__ == "__main__":
    main()
