"""The origin's door for publishers: nginx-rtmp's ``on_publish`` asks the controller.

nginx posts the publish request (``name`` = the lesson id, and the publish URL's query,
``key=…``) to a small HTTP listener on loopback; the gate answers 2xx only when the key
is the lesson's (:func:`~controller.publishing.links.stream_key`) and the lesson is
published now, so a stream key left over from an unpublished lesson is refused too.
Anything else is 403 and nginx drops the connection. The listener is plain HTTP on
127.0.0.1 (nginx-rtmp cannot call HTTPS), outside the console's API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from controller.publishing.links import key_matches

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096  # nginx-rtmp's form: a dozen short fields


class PublishGate:
    """``POST /on-publish`` on 127.0.0.1; ``start()``/``stop()``."""

    def __init__(self, secret: str, is_published: Callable[[str], bool], port: int = 0) -> None:
        self._secret = secret
        self._is_published = is_published  # blocking (a database read): runs in a thread
        self._want_port = port
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.accepted = 0
        self.refused = 0

    async def on_publish(self, request: web.Request) -> web.Response:
        """200 for the lesson's own key while it is published, else 403 (logged)."""
        try:
            form = await request.post()
        except (ValueError, web.HTTPException) as err:
            self.refused += 1
            log.warning("on_publish: unreadable request from nginx (%s)", err)
            return web.Response(status=400, text="unreadable on_publish form\n")
        name, key = str(form.get("name", "")), str(form.get("key", ""))
        addr = str(form.get("addr", "?"))
        if not key_matches(self._secret, name, key):
            self.refused += 1
            log.warning("on_publish: refused %r from %s: wrong or missing stream key", name, addr)
            return web.Response(status=403, text="wrong stream key\n")
        try:
            published = await asyncio.to_thread(self._is_published, name)
        except Exception:  # a database hiccup refuses this attempt; the agent retries
            log.exception("on_publish: could not check whether %s is published", name)
            published = False
        if not published:
            self.refused += 1
            log.warning("on_publish: refused %r from %s: the lesson is not published", name, addr)
            return web.Response(status=403, text="lesson not published\n")
        self.accepted += 1
        log.info("on_publish: %s publishing from %s", name, addr)
        return web.Response(text="ok\n")

    async def start(self) -> None:
        """Listen on 127.0.0.1 (``port`` 0: any free port, then in ``self.port``)."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.add_routes([web.post("/on-publish", self.on_publish)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._want_port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
