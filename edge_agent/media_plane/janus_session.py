"""One Janus session over the HTTP API: requests, the event long-poll, keepalives, loss.

HTTP long-poll rather than WebSocket: the placement the controller hands out is the
instance's ``api_url``, which is the HTTP transport the controller already checks at
start-up and the only transport our Janus instances must load; a long-poll is one more
GET at a time, negligible beside a lesson's media. A killed instance fails that GET at
once (connection refused or reset), and a silent one fails the keepalive's timeout, so
loss is noticed within ``KEEPALIVE_S + REQUEST_TIMEOUT_S`` at worst.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

import aiohttp

from edge_agent.media_plane.exceptions import (
    JanusLost,
    JanusMediaError,
    JanusProtocolError,
)

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 5.0  # every request and every awaited plugin answer
# Janus drops a session after 60 s of silence; we send one far more often, because it is
# also how a frozen instance (alive, answering nothing) is noticed: within 10 s, in time
# for a lesson to be re-joined elsewhere.
KEEPALIVE_S = 5.0
POLL_WAIT_S = 30.0  # Janus holds a long-poll at most 30 s; we wait a little longer
SESSION_NOT_FOUND = 458  # JANUS_ERROR_SESSION_NOT_FOUND
HANDLE_NOT_FOUND = 459  # JANUS_ERROR_HANDLE_NOT_FOUND

Event = dict[str, Any]
EventSink = Callable[[Event], None]


class JanusSession:
    """A session on one Janus instance; plugin handles are attached through it.

    ``lost`` is set, and ``on_lost`` called once, when the instance stops answering or
    forgets the session; every later request raises ``JanusLost``.
    """

    def __init__(
        self,
        url: str,
        *,
        on_lost: Callable[[JanusLost], None] | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        self.on_lost = on_lost
        self.lost = asyncio.Event()
        self.lost_error: JanusLost | None = None
        self.session_id: int | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: dict[str, asyncio.Future[Event]] = {}
        self._sinks: dict[int, EventSink] = {}

    async def start(self) -> None:
        """Create the session and start the long-poll and keepalive loops."""
        self._http = aiohttp.ClientSession()
        try:
            data = await self.post({"janus": "create"}, path="")
            self.session_id = int(data["data"]["id"])
        except (KeyError, TypeError, ValueError) as err:
            await self._close_http()
            raise JanusProtocolError(
                self.url, f"create answered without a session id ({err})"
            ) from err
        except BaseException:
            await self._close_http()
            raise
        self._tasks = [
            asyncio.create_task(self._poll(), name=f"janus-poll-{self.session_id}"),
            asyncio.create_task(self._keepalive(), name=f"janus-keepalive-{self.session_id}"),
        ]

    async def stop(self) -> None:
        """Destroy the session (best effort: a lost instance is not waited for)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._http is None:
            return
        if self.session_id is not None and not self.lost.is_set():
            with contextlib.suppress(JanusMediaError):
                await self.post({"janus": "destroy"})
        await self._close_http()
        self._fail_waiting(JanusLost(self.url, "the session was closed"))

    async def _close_http(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    def route(self, handle: int, sink: EventSink | None) -> None:
        """Send the unsolicited events of ``handle`` to ``sink`` (None: stop)."""
        if sink is None:
            self._sinks.pop(handle, None)
        else:
            self._sinks[handle] = sink

    async def post(
        self, body: dict[str, Any], *, path: str | None = None, transaction: str | None = None
    ) -> Event:
        """POST one request (to the session, or ``path`` below the API); the answer.

        A Janus core error raises: a forgotten session as ``JanusLost``, anything else as
        ``JanusProtocolError``.
        """
        if self.lost_error is not None:
            raise self.lost_error
        if self._http is None:
            raise JanusLost(self.url, "the session is not started")
        if path is None:
            path = f"/{self.session_id}"
        transaction = transaction or secrets.token_hex(8)
        url = self.url + path
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._http.post(url, json={**body, "transaction": transaction}) as resp:
                    data = await resp.json(content_type=None)
        except TimeoutError as err:
            raise self._lose(f"{body['janus']} had no answer within {self.timeout_s:g} s") from err
        except (aiohttp.ClientError, OSError) as err:
            raise self._lose(f"{body['janus']} failed: {err}") from err
        except ValueError as err:
            raise JanusProtocolError(
                self.url,
                f"{body['janus']} answered with something other than JSON; "
                "check that api_url is the Janus HTTP API (…/janus)",
            ) from err
        if not isinstance(data, dict):
            raise JanusProtocolError(self.url, f"{body['janus']} answered {data!r}")
        self._raise_core_error(body["janus"], data)
        return data

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, str] | None = None
    ) -> Event:
        """A plugin message; the synchronous answer, or the event that answers an "ack"."""
        msg: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        if self.lost_error is not None:
            raise self.lost_error
        # Registered before the POST: the long-poll may deliver the event first.
        transaction = secrets.token_hex(8)
        waiter: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = waiter
        try:
            data = await self.post(
                msg, path=f"/{self.session_id}/{handle}", transaction=transaction
            )
            if data.get("janus") != "ack":
                return data
            try:
                async with asyncio.timeout(self.timeout_s):
                    return await waiter
            except TimeoutError as err:
                raise self._lose(
                    f"{body.get('request')} was acknowledged but not answered within "
                    f"{self.timeout_s:g} s"
                ) from err
        finally:
            self._waiting.pop(transaction, None)
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # mark a loss set on it as seen: raised already

    def _raise_core_error(self, request: str, data: Event) -> None:
        if data.get("janus") != "error":
            return
        error = data.get("error") or {}
        code, reason = error.get("code"), error.get("reason", "")
        if code in (SESSION_NOT_FOUND, HANDLE_NOT_FOUND):
            raise self._lose(f"{request}: {reason} (the instance restarted or timed us out)")
        raise JanusProtocolError(self.url, f"{request} refused: {reason} (error {code})")

    async def _poll(self) -> None:
        assert self._http is not None
        url = f"{self.url}/{self.session_id}?maxev=10"
        while True:
            try:
                async with asyncio.timeout(POLL_WAIT_S + self.timeout_s):
                    async with self._http.get(url) as resp:
                        data = await resp.json(content_type=None)
            except TimeoutError:
                self._lose(
                    f"the event long-poll had no answer in {POLL_WAIT_S + self.timeout_s:g} s"
                )
                return
            except (aiohttp.ClientError, OSError, ValueError) as err:
                self._lose(f"the event long-poll failed: {err}")
                return
            for event in data if isinstance(data, list) else [data]:
                if not isinstance(event, dict):
                    continue
                if event.get("janus") == "error":
                    code = (event.get("error") or {}).get("code")
                    if code == SESSION_NOT_FOUND:
                        self._lose("the instance no longer knows our session")
                        return
                self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        kind = event.get("janus")
        if kind == "keepalive":
            return
        waiter = self._waiting.get(str(event.get("transaction", "")))
        if waiter is not None and kind == "event" and not waiter.done():
            waiter.set_result(event)
            return
        sink = self._sinks.get(event.get("sender", 0))
        if sink is not None:
            try:
                sink(event)
            except Exception:
                log.exception("janus event handler failed for %s", event.get("janus"))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s)
            try:
                await self.post({"janus": "keepalive"})
            except JanusMediaError:
                return  # post() has declared the loss

    def _lose(self, why: str) -> JanusLost:
        """Declare the session lost (once); the error to raise."""
        if self.lost_error is None:
            self.lost_error = JanusLost(
                self.url,
                f"{why}; the lesson's media through this instance has stopped: re-join where "
                "the controller places the lesson next",
            )
            log.warning("%s", self.lost_error)
            self.lost.set()
            self._fail_waiting(self.lost_error)
            if self.on_lost is not None:
                try:
                    self.on_lost(self.lost_error)
                except Exception:
                    log.exception("on_lost handler failed")
        return self.lost_error

    def _fail_waiting(self, err: JanusMediaError) -> None:
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(err)
