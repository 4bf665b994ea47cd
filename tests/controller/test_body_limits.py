"""Body limits come before reading: an oversized body is refused with 413 before the
server reads it, with or without a Content-Length, signed in or not."""

from __future__ import annotations

import asyncio
import json
import pathlib
import time
from collections.abc import AsyncIterator

import pytest
from helpers import loopback_client_tls, loopback_server_tls
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import ServerKeys
from controller.app.http_api import HttpApi
from controller.common.body_limits import DEFAULT_BODY_LIMIT, SIGN_IN_BODY_LIMIT
from controller.db.session import make_engine, migrate, sessions
from controller.recordings.uploads import UploadService
from controller.storage.local import LocalStorage

pytestmark = pytest.mark.timeout(30)

HUNDRED_MB = 100 * 1000 * 1000


@pytest.fixture
async def http(tmp_path: pathlib.Path) -> AsyncIterator[HttpApi]:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    db: sessionmaker[Session] = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    uploads = UploadService(db, LocalStorage(tmp_path / "storage"), lambda a, b: None)
    api = HttpApi(db, uploads, keys, lambda: [])
    await api.start("127.0.0.1", 0, tls=loopback_server_tls())
    try:
        yield api
    finally:
        await api.stop()


async def _answer(reader: asyncio.StreamReader, timeout: float) -> tuple[int, dict[str, object]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode().split("\r\n")
    length = next(int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length"))
    body = await asyncio.wait_for(reader.readexactly(length), timeout)
    return int(lines[0].split()[1]), json.loads(body)


async def _connect(http: HttpApi) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", http.port, ssl=loopback_client_tls())


async def _closed(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), timeout) == b""
    except (ConnectionError, TimeoutError):
        return False


async def test_a_100_mb_sign_in_body_is_refused_before_it_is_read(http: HttpApi) -> None:
    reader, writer = await _connect(http)
    started = time.monotonic()
    writer.write(
        b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {HUNDRED_MB}\r\n\r\n".encode()
        + b'{"username": "admin", "password": "'
        + b"x" * 1000
    )
    await writer.drain()
    status, body = await _answer(reader, 2)
    assert status == 413, body
    assert time.monotonic() - started < 2
    assert f"at most {SIGN_IN_BODY_LIMIT} bytes" in str(body["error"])
    assert str(HUNDRED_MB) in str(body["error"])
    # The server closes the connection rather than reading (or draining) the rest.
    assert await _closed(reader, 2)
    writer.close()
    assert http.body_limits.refused == 1


async def test_a_chunked_body_is_cut_off_at_the_limit(http: HttpApi) -> None:
    reader, writer = await _connect(http)
    writer.write(
        b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    sent = 0
    chunk = b"x" * 1024
    answer = asyncio.create_task(_answer(reader, 10))
    while not answer.done() and sent < 10 * 1024 * 1024:
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        try:
            await writer.drain()
        except ConnectionResetError:
            break  # the server answered and closed before this chunk left: as it should
        sent += len(chunk)
        await asyncio.sleep(0.002)
    status, body = await answer
    assert status == 413, body
    assert sent < 16 * SIGN_IN_BODY_LIMIT  # refused soon after the limit, not at the end
    writer.close()


async def test_every_other_route_has_a_small_default_limit_before_sign_in(
    http: HttpApi,
) -> None:
    """Not signed in, a 2 MiB body is answered 413, not read and then refused with 401."""
    reader, writer = await _connect(http)
    assert DEFAULT_BODY_LIMIT <= 1024 * 1024
    writer.write(
        b"POST /api/v1/lessons HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {2 * DEFAULT_BODY_LIMIT}\r\n\r\n{{".encode()
    )
    await writer.drain()
    status, body = await _answer(reader, 2)
    assert status == 413 and "POST /api/v1/lessons" in str(body["error"]), body
    writer.close()
