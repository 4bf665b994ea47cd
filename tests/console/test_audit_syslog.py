"""A real controller started with ``audit_syslog`` sends its audit rows, reads of
recordings included, to a UDP syslog collector on loopback."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator

import pytest
from console.harness import Console

from controller.app.daemon import ControllerConfig


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    """The county's log collector: a UDP socket on loopback."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
def controller_config(
    controller_config: ControllerConfig, receiver: socket.socket
) -> ControllerConfig:
    """The console's controller, sending audit rows to ``receiver``."""
    port = receiver.getsockname()[1]
    return dataclasses.replace(controller_config, audit_syslog=f"udp://127.0.0.1:{port}")


async def test_audit_rows_reach_the_collector(console: Console, receiver: socket.socket) -> None:
    async with (
        console.session(headers=console.bearer("inspector")) as http,
        http.get(f"{console.base}/api/v1/recordings?school=City+School") as r,
    ):
        assert r.status == 200
    message = receiver.recv(65536).decode()
    assert message.startswith("<86>1 ")  # authpriv.info, RFC 5424
    assert 'user="inspector" role="inspector" action="list_recordings"' in message
    assert 'target="/api/v1/recordings?school=City+School"' in message
    assert message.endswith('{"status": 200, "via": "token"}')
