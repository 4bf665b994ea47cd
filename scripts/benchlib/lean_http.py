"""A lean HTTP/1.1 GET client for benchmarks that simulate many viewers on one machine.

One keep-alive connection, one request at a time, bodies counted into a reused buffer
(``asyncio.BufferedProtocol``: no per-chunk bytes objects) unless asked for. aiohttp
spends several times more CPU per fragment, and on a loaded 2-core machine the simulated
viewers, not the server under test, then set the figures. Only what nginx answers for
static files is handled: a Content-Length on every response, no chunked bodies.
"""

from __future__ import annotations

import asyncio


class _Connection(asyncio.BufferedProtocol):
    def __init__(self) -> None:
        self._buffer = memoryview(bytearray(256 * 1024))
        self._head = bytearray()
        self._length = -1  # body length once the head is in
        self._got = 0
        self._status = 0
        self._keep: bytearray | None = None
        self._done: asyncio.Future[tuple[int, bytes, int]] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is not None and not self._done.done():
            self._done.set_exception(ConnectionError(f"connection lost: {exc}"))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        data = self._buffer[:nbytes]
        if self._length < 0:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, rest = bytes(self._head[:end]), bytes(self._head[end + 4 :])
            lines = head.split(b"\r\n")
            self._status = int(lines[0].split()[1])
            self._length = next(
                int(line.split(b":", 1)[1])
                for line in lines[1:]
                if line.lower().startswith(b"content-length:")
            )
            self._got = len(rest)
            if self._keep is not None:
                self._keep += rest
        else:
            self._got += nbytes
            if self._keep is not None:
                self._keep += data
        if self._got >= self._length and self._done is not None and not self._done.done():
            body = bytes(self._keep) if self._keep is not None else b""
            self._done.set_result((self._status, body, self._got))

    def request(self, path: str, keep: bool) -> asyncio.Future[tuple[int, bytes, int]]:
        assert self.transport is not None
        self._head.clear()
        self._length, self._got, self._status = -1, 0, 0
        self._keep = bytearray() if keep else None
        self._done = asyncio.get_running_loop().create_future()
        self.transport.write(f"GET {path} HTTP/1.1\r\nHost: origin\r\n\r\n".encode())
        return self._done


class LeanClient:
    """``await get(path, keep=False)`` → (status, body if kept, body length)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._conn: _Connection | None = None

    async def get(self, path: str, keep: bool = False) -> tuple[int, bytes, int]:
        """GET ``path`` on the kept-alive connection (reconnecting when it closed)."""
        if self._conn is None or self._conn.closed:
            loop = asyncio.get_running_loop()
            _, self._conn = await loop.create_connection(_Connection, self.host, self.port)
        return await self._conn.request(path, keep)

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
