"""An impairing HTTP proxy in front of a storage server, for the fault suite.

It forwards every request to the upstream server and can:
- answer HTTP 500 to every n-th multipart part upload (``fail_every``);
- cut the network: refuse new requests and abort those in flight (``cut()``/``restore()``).
It runs its own event loop in a thread, so a synchronous test can steer it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import aiohttp
from aiohttp import web

HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class FaultyProxy:
    """Forwards to ``upstream``; steer with ``fail_every``, ``cut`` and ``restore``."""

    def __init__(self, upstream: str, fail_every: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.fail_every = fail_every
        self.parts_seen = 0
        self.failed_parts = 0
        self.refused = 0
        self.aborted = 0
        self._cut = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="faulty-proxy", daemon=True)

    @property
    def endpoint(self) -> str:
        """The proxy's URL."""
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """The network to storage goes down."""
        self._cut.set()

    def restore(self) -> None:
        """The network to storage is back."""
        self._cut.clear()

    def start(self) -> None:
        """Listen on a free loopback port."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("faulty proxy did not start")

    def stop(self) -> None:
        """Stop the proxy's loop."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.run_until_complete(self._http.close())

    async def _serve(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._http = aiohttp.ClientSession(auto_decompress=False)

    def _drop(self, request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=503)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._cut.is_set():
            self.refused += 1
            return self._drop(request)
        is_part = request.method == "PUT" and "partNumber" in request.query
        if is_part:
            self.parts_seen += 1
            if self.fail_every and self.parts_seen % self.fail_every == 0:
                await request.read()
                self.failed_parts += 1
                return web.Response(
                    status=500,
                    text="<Error><Code>InternalError</Code><Message>injected</Message></Error>",
                    content_type="application/xml",
                )
        body = await request.read()
        if self._cut.is_set():
            self.aborted += 1
            return self._drop(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        headers["Host"] = request.host
        url = self.upstream + request.rel_url.raw_path_qs
        async with self._http.request(
            request.method, url, data=body, headers=headers, allow_redirects=False
        ) as resp:
            payload = await resp.read()
            out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP}
            if self._cut.is_set():
                self.aborted += 1
                return self._drop(request)
            return web.Response(status=resp.status, body=payload, headers=out_headers)


@contextlib.contextmanager
def faulty_proxy(upstream: str, fail_every: int = 0) -> Iterator[FaultyProxy]:
    """A started proxy, stopped afterwards."""
    proxy = FaultyProxy(upstream, fail_every)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
