"""A running controller serves HTTPS only: plain HTTP refused, HSTS and a Secure cookie,
plain HTTP from a trusted TLS-terminating proxy only, and the ``check_tls`` probe."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from helpers import controller_base, controller_session
from sqlalchemy import text

from controller.app.daemon import ControllerConfig, ControllerDaemon
from controller.auth.accounts import add_user
from controller.db.session import database_url, make_engine, migrate, sessions
from controller.tls.probe import check_tls, probe_tls

PASSWORD = "correct horse battery"


async def _plain(port: int, headers: str = "") -> bytes:
    """``_plain_blocking`` off the event loop, which serves the controller."""
    return await asyncio.to_thread(_plain_blocking, port, headers)


def _plain_blocking(port: int, headers: str = "") -> bytes:
    """A raw plain-HTTP GET /healthz; whatever came back (b"" when the peer hung up)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
        sock.sendall(head.encode())
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


async def _proxied(
    config: ControllerConfig, trusted: tuple[str, ...]
) -> AsyncIterator[ControllerDaemon]:
    cfg = dataclasses.replace(config, trusted_proxies=trusted, proxy_port=0)
    daemon = ControllerDaemon(cfg)
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()


@pytest.fixture
async def behind_proxy(controller_config: ControllerConfig) -> AsyncIterator[ControllerDaemon]:
    """A controller that trusts a proxy on loopback, with a console user."""
    state = controller_config.state_dir
    state.mkdir(parents=True, exist_ok=True)
    url = database_url(state)
    migrate(url)
    with sessions(make_engine(url))() as db:
        add_user(db, "wang", "scheduler", PASSWORD)
    async for daemon in _proxied(controller_config, ("127.0.0.0/8",)):
        yield daemon


async def test_plain_http_to_the_https_port_gets_no_answer(controller: ControllerDaemon) -> None:
    assert controller.http is not None
    answer = await _plain(controller.http.port)
    assert not answer.startswith(b"HTTP/")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{controller.http.port}/healthz") as r:
                await r.read()
    assert controller.http.proxy_port is None  # no plain listener without trusted proxies


async def test_https_answers_with_hsts_against_the_pinned_ca(controller: ControllerDaemon) -> None:
    async with (
        controller_session(controller) as http,
        http.get(f"{controller_base(controller)}/healthz") as r,
    ):
        assert r.status == 200
        assert r.headers["Strict-Transport-Security"] == "max-age=31536000"
    # The system trust store does not know the county CA: nothing trusts it by accident.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with http.get(f"{controller_base(controller)}/healthz") as r:
                await r.read()


async def test_check_tls_says_yes_for_the_controller_and_no_for_plain_http(
    behind_proxy: ControllerDaemon,
) -> None:
    assert behind_proxy.certificate is not None and behind_proxy.http is not None
    trust = behind_proxy.certificate.trust_pem
    base = controller_base(behind_proxy)
    probe = await asyncio.to_thread(probe_tls, base, trust)
    assert probe.required and await asyncio.to_thread(check_tls, base, trust), probe.detail
    # The proxy port speaks plain HTTP (and refuses it without X-Forwarded-Proto): the
    # probe sees no HTTPS there.
    assert not await asyncio.to_thread(
        check_tls, f"https://127.0.0.1:{behind_proxy.http.proxy_port}", trust
    )
    assert not await asyncio.to_thread(
        check_tls, f"http://127.0.0.1:{behind_proxy.http.port}", trust
    )


async def test_a_trusted_proxy_that_says_https_is_served_as_https(
    behind_proxy: ControllerDaemon,
) -> None:
    assert behind_proxy.http is not None and behind_proxy.http.proxy_port
    port = behind_proxy.http.proxy_port
    ok = await _plain(port, "X-Forwarded-Proto: https\r\nX-Forwarded-For: 10.9.8.7\r\n")
    assert ok.startswith(b"HTTP/1.1 200"), ok[:200]
    assert b"Strict-Transport-Security: max-age=31536000" in ok
    # The session cookie is Secure there too: the browser spoke HTTPS to the proxy.
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{port}/api/v1/session",
            json={"username": "wang", "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https"},
        ) as r,
    ):
        assert r.status == 200, await r.text()
        assert "; Secure" in r.headers["Set-Cookie"]


async def test_a_trusted_proxy_without_x_forwarded_proto_https_is_refused(
    behind_proxy: ControllerDaemon,
) -> None:
    assert behind_proxy.http is not None and behind_proxy.http.proxy_port
    for headers in ("", "X-Forwarded-Proto: http\r\n"):
        answer = await _plain(behind_proxy.http.proxy_port, headers)
        assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
        assert b"X-Forwarded-Proto: https" in answer


async def test_plain_http_from_an_untrusted_address_is_refused(
    controller_config: ControllerConfig,
) -> None:
    async for daemon in _proxied(controller_config, ("10.0.0.0/8",)):
        assert daemon.http is not None and daemon.http.proxy_port
        answer = await _plain(daemon.http.proxy_port, "X-Forwarded-Proto: https\r\n")
        assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
        assert b"plain HTTP refused from 127.0.0.1" in answer
        assert b"--trusted-proxy" in answer


def test_a_bad_trusted_proxy_is_refused_at_start(controller_config: ControllerConfig) -> None:
    with pytest.raises(ValueError, match="not an address or CIDR"):
        dataclasses.replace(controller_config, trusted_proxies=("the-proxy",))
    with pytest.raises(ValueError, match="together"):
        dataclasses.replace(controller_config, tls_cert=controller_config.state_dir / "c.pem")


async def test_sign_in_throttle_and_audit_see_the_forwarded_client(
    behind_proxy: ControllerDaemon,
) -> None:
    """Behind the proxy, the client is X-Forwarded-For's last entry, not the proxy."""
    assert behind_proxy.http is not None and behind_proxy.http.proxy_port
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{behind_proxy.http.proxy_port}/api/v1/session",
            json={"username": "wang", "password": "wrong"},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4, 10.20.30.40"},
        ) as r,
    ):
        assert r.status == 401
    with behind_proxy._sessions() as db:
        rows = db.execute(text("SELECT remote_addr FROM audit_log ORDER BY id DESC LIMIT 1")).all()
    assert rows and rows[0][0] == "10.20.30.40"
