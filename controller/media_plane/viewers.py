"""Console patrol viewers on Janus: the controller subscribes a browser to a lesson's feeds.

The controller holds the room's PIN, so it makes the subscription: a Janus session over
the instance's HTTP API, a VideoRoom subscriber handle joined with exactly the streams the
viewer asked for, and Janus's SDP offer handed to the browser, whose answer comes back
through the controller (``start``). The media then flows between the browser and Janus
only. The session is kept alive (keepalives, an event long-poll) while the viewer
watches; the viewer ends when it is closed, when Janus hangs the PeerConnection up (the
browser closed it, or ICE/DTLS failed), or when the instance forgets or stops answering.

``probe_streams`` finds what each publisher carries (track names are the streams'
descriptions, classrooms the display names) with a subscriber join that is never
answered: ``listparticipants`` gives feed ids but not their streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from controller.media_plane.exceptions import MediaPlaneError

log = logging.getLogger(__name__)

PLUGIN = "janus.plugin.videoroom"
REQUEST_TIMEOUT_S = 5.0
KEEPALIVE_S = 15.0  # Janus forgets a session after 60 s of silence
POLL_WAIT_S = 30.0  # Janus holds a long-poll at most 30 s
MAX_ANSWER_BYTES = 1024 * 1024


class ViewerError(MediaPlaneError):
    """Janus refused or did not answer a viewer's request; the message says which."""


class AnswerRefused(ViewerError):
    """Janus refused the browser's SDP answer (a 400 for the browser)."""


class AlreadyAnswered(ViewerError):
    """The viewer was answered already (a 400 that leaves it open)."""


@dataclass(frozen=True)
class Stream:
    """One stream a publisher carries: its feed, its mid there, kind and track name."""

    feed: int
    classroom: str
    mid: str
    kind: str
    track: str


class _Session:
    """A bare Janus API session: requests with a timeout, and the ack-then-event answers."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.id: int | None = None
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POLL_WAIT_S + 10))
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def post(self, body: dict[str, Any], path: str, tx: str | None = None) -> dict[str, Any]:
        body = {**body, "transaction": tx or secrets.token_hex(8)}
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                async with self._http.post(self.url + path, json=body) as resp:
                    raw = await resp.content.read(MAX_ANSWER_BYTES)
        except TimeoutError as err:
            raise ViewerError(f"{self.url}: {body['janus']} had no answer within 5 s") from err
        except aiohttp.ClientError as err:
            raise ViewerError(f"{self.url}: {body['janus']} failed ({err})") from err
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise ViewerError(f"{self.url}: {body['janus']} answered something not JSON") from err
        if not isinstance(data, dict):
            raise ViewerError(f"{self.url}: {body['janus']} answered {data!r}")
        if data.get("janus") == "error":
            error = data.get("error") or {}
            raise ViewerError(
                f"{self.url}: {body['janus']} refused: {error.get('reason')} "
                f"(error {error.get('code')})"
            )
        return data

    async def create(self) -> None:
        data = await self.post({"janus": "create"}, "")
        self.id = int(data["data"]["id"])

    async def attach(self) -> int:
        data = await self.post({"janus": "attach", "plugin": PLUGIN}, f"/{self.id}")
        return int(data["data"]["id"])

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A plugin request; the event answering it. A refusal raises ``ViewerError``."""
        msg: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        tx = secrets.token_hex(8)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[tx] = waiter
        try:
            data = await self.post(msg, f"/{self.id}/{handle}", tx)
            if data.get("janus") == "ack":
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    data = await waiter
        except TimeoutError as err:
            raise ViewerError(f"{self.url}: {body.get('request')} was not answered") from err
        finally:
            self._waiting.pop(tx, None)
        plugin = (data.get("plugindata") or {}).get("data") or {}
        if "error" in plugin or "error_code" in plugin:
            raise ViewerError(
                f"VideoRoom {body.get('request')} refused: {plugin.get('error')} "
                f"(error {plugin.get('error_code')})"
            )
        return data

    async def poll_once(self) -> list[dict[str, Any]]:
        """One long-poll: the events Janus had for this session (answers are routed)."""
        async with self._http.get(f"{self.url}/{self.id}?maxev=10") as resp:
            data = await resp.json(content_type=None)
        events = [e for e in (data if isinstance(data, list) else [data]) if isinstance(e, dict)]
        out = []
        for event in events:
            waiter = self._waiting.get(str(event.get("transaction", "")))
            if waiter is not None and event.get("janus") == "event" and not waiter.done():
                waiter.set_result(event)
            else:
                out.append(event)
        return out

    async def close(self) -> None:
        if self.id is not None:
            with contextlib.suppress(ViewerError):
                await self.post({"janus": "destroy"}, f"/{self.id}")
            self.id = None
        await self._http.close()


async def probe_streams(url: str, room: int, pin: str, feeds: list[int]) -> list[Stream]:
    """Every stream the ``feeds`` carry (a subscriber joined, never answered, then gone)."""
    if not feeds:
        return []
    session = _Session(url)
    poll: asyncio.Task[None] | None = None
    try:
        await session.create()
        handle = await session.attach()
        poll = asyncio.create_task(_drain(session))
        event = await session.message(
            handle,
            {
                "request": "join",
                "ptype": "subscriber",
                "room": room,
                "pin": pin,
                "streams": [{"feed": f} for f in feeds],
            },
        )
        streams = event["plugindata"]["data"].get("streams") or []
        return [
            Stream(
                int(s["feed_id"]),
                str(s.get("feed_display", "")),
                str(s["feed_mid"]),
                str(s["type"]),
                str(s.get("feed_description", "")),
            )
            for s in streams
            if s.get("type") in ("audio", "video") and "feed_id" in s
        ]
    except (KeyError, TypeError, ValueError) as err:
        raise ViewerError(f"{url}: the subscriber probe answered unexpectedly ({err})") from err
    finally:
        if poll is not None:
            poll.cancel()
            await asyncio.gather(poll, return_exceptions=True)
        await session.close()


async def _drain(session: _Session) -> None:
    while True:
        try:
            await session.poll_once()
        except (aiohttp.ClientError, ValueError, TimeoutError):
            await asyncio.sleep(0.5)


Ended = Callable[[str], Awaitable[None]]


class JanusViewer:
    """One browser's subscription to some of a room's streams, through the controller.

    ``on_end(reason)`` is awaited once, whichever way the viewer ends.
    """

    def __init__(self, url: str, room: int, pin: str, streams: list[Stream], on_end: Ended):
        self.url = url
        self.room = room
        self._pin = pin
        self.streams = list(streams)
        self._on_end = on_end
        self._session = _Session(url)
        self._handle: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.answered = False
        self.ended: str | None = None

    @property
    def session_id(self) -> int | None:
        """The Janus session holding the viewer (None once ended)."""
        return self._session.id

    async def offer(self) -> tuple[str, list[str]]:
        """Join as a subscriber to the streams; Janus's SDP offer and, per stream asked
        (in order), its mid in that offer."""
        try:
            await self._session.create()
            self._handle = await self._session.attach()
            self._tasks = [
                asyncio.create_task(self._poll(), name=f"viewer-poll-{self._session.id}"),
                asyncio.create_task(self._keepalive(), name=f"viewer-ka-{self._session.id}"),
            ]
            event = await self._session.message(
                self._handle,
                {
                    "request": "join",
                    "ptype": "subscriber",
                    "room": self.room,
                    "pin": self._pin,
                    "streams": [{"feed": s.feed, "mid": s.mid} for s in self.streams],
                },
            )
            jsep = event.get("jsep") or {}
            if jsep.get("type") != "offer" or not isinstance(jsep.get("sdp"), str):
                raise ViewerError(f"{self.url}: the subscription came without an SDP offer")
            ours = {
                (int(s["feed_id"]), str(s["feed_mid"])): str(s["mid"])
                for s in event["plugindata"]["data"].get("streams") or []
                if "feed_id" in s
            }
            mids = [ours.get((s.feed, s.mid), "") for s in self.streams]
        except ViewerError:
            await self._stop()
            raise
        except (KeyError, TypeError, ValueError) as err:
            await self._stop()
            raise ViewerError(
                f"{self.url}: the subscription answered unexpectedly ({err})"
            ) from err
        if "" in mids:
            await self._stop()
            raise ViewerError(f"{self.url}: Janus left out some of the streams asked for")
        return str(jsep["sdp"]), mids

    async def answer(self, sdp: str) -> None:
        """Start the media with the browser's answer; ``AnswerRefused`` if Janus will not."""
        if self._handle is None or self.ended is not None:
            raise ViewerError(f"the viewer has ended ({self.ended or 'not opened'})")
        if self.answered:
            raise AlreadyAnswered("the viewer was answered already; open a new one to renegotiate")
        try:
            await self._session.message(
                self._handle, {"request": "start"}, {"type": "answer", "sdp": sdp}
            )
        except ViewerError as err:
            raise AnswerRefused(f"Janus refused the answer: {err}") from err
        self.answered = True

    async def close(self, reason: str) -> None:
        """Hang up: leave, destroy the session, and report the end (once)."""
        await self._end(reason)

    async def _end(self, reason: str) -> None:
        if self.ended is not None:
            return
        self.ended = reason
        await self._stop()
        try:
            await self._on_end(reason)
        except Exception:
            log.exception("viewer end handler failed")

    async def _stop(self) -> None:
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in self._tasks if t is not current), return_exceptions=True)
        self._tasks = []
        # Destroying the session detaches the handle and closes its PeerConnection.
        self._handle = None
        await self._session.close()

    def _spawn_end(self, reason: str) -> None:
        # Ended from inside one of our own tasks: _stop must not wait for that task.
        asyncio.get_running_loop().create_task(self._end(reason))

    async def _poll(self) -> None:
        while True:
            try:
                events = await self._session.poll_once()
            except (aiohttp.ClientError, ValueError, TimeoutError) as err:
                self._spawn_end(f"the Janus instance stopped answering ({type(err).__name__})")
                return
            for event in events:
                kind = event.get("janus")
                if kind == "hangup":
                    self._spawn_end(f"Janus hung up: {event.get('reason', 'closed')}")
                    return
                if kind == "detached":
                    self._spawn_end("Janus detached the viewer")
                    return
                data = (event.get("plugindata") or {}).get("data") or {}
                if kind == "event" and data.get("videoroom") == "destroyed":
                    self._spawn_end("the lesson's room was destroyed")
                    return
                if kind == "error" and (event.get("error") or {}).get("code") == 458:
                    self._spawn_end("the Janus instance forgot the session")
                    return

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            try:
                await self._session.post({"janus": "keepalive"}, f"/{self._session.id}")
            except ViewerError as err:
                self._spawn_end(f"keepalive failed: {err}")
                return
