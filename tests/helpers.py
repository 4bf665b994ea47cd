"""Helpers shared by tests: free ports, enrolment tokens, API tokens, real-peer marks, and
HTTPS clients that trust a controller's county CA (and nothing else)."""

from __future__ import annotations

import atexit
import functools
import os
import pathlib
import shutil
import ssl
import tempfile
from typing import Any

import aiohttp
import pytest
from benchlib.ports import free_port_pair
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.daemon import ControllerDaemon
from controller.auth.accounts import add_user, create_api_token
from controller.db.session import database_url, make_engine, migrate, sessions
from controller.tls.ca import ServerCertificate, ensure_server_certificate
from controller.tls.server import server_context
from protocols.tls import pinned_client_context

REPO = pathlib.Path(__file__).resolve().parent.parent
__all__ = [
    "REPO",
    "bearer_headers",
    "controller_base",
    "controller_session",
    "free_port_pair",
    "https_session",
    "issue_token",
    "loopback_client_tls",
    "loopback_server_tls",
    "loopback_session",
    "needs",
]


def issue_token(state_dir: pathlib.Path, classroom_id: str) -> str:
    """Add a classroom to a controller state dir and return its enrolment token."""
    url = database_url(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    migrate(url)
    keys = ServerKeys.load_or_create(state_dir)
    with sessions(make_engine(url))() as db:
        return add_classroom(db, classroom_id, classroom_id, "test school", keys.public)


def bearer_headers(db: sessionmaker[Session], role: str = "admin") -> dict[str, str]:
    """Create a token-only user of ``role`` and return headers that call the API as it."""
    with db() as s:
        add_user(s, f"test-{role}", role, None)
        return {"Authorization": f"Bearer {create_api_token(s, f'test-{role}')}"}


def needs(available: bool, reason: str) -> pytest.MarkDecorator:
    """Skip a test whose real peer (an apt package) is missing, on a developer's machine
    only: in CI (``CI`` set) scripts/bootstrap installs it, so the test runs, and fails
    if it is not there, rather than passing by being skipped."""
    return pytest.mark.skipif(not available and not os.environ.get("CI"), reason=reason)


def https_session(trust_pem: str, **kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp client that verifies the controller against ``trust_pem`` only
    (``local_addr`` binds its connections to a source address)."""
    local_addr = kwargs.pop("local_addr", None)
    connector = aiohttp.TCPConnector(ssl=pinned_client_context(trust_pem), local_addr=local_addr)
    return aiohttp.ClientSession(connector=connector, **kwargs)


@functools.cache
def loopback_tls() -> ServerCertificate:
    """One county CA and 127.0.0.1 certificate per test process, for tests that start
    ``HttpApi`` alone (a whole daemon makes its own in its state directory)."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="classbridge-test-tls-"))
    atexit.register(shutil.rmtree, folder, True)
    return ensure_server_certificate(folder, ["127.0.0.1", "localhost"])


def loopback_server_tls() -> ssl.SSLContext:
    """The server context for ``HttpApi.start(..., tls=...)`` in tests."""
    return server_context(loopback_tls())


def controller_session(daemon: ControllerDaemon, **kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp client that trusts ``daemon``'s county CA only."""
    assert daemon.certificate is not None, "the daemon has not started"
    return https_session(daemon.certificate.trust_pem, **kwargs)


def controller_base(daemon: ControllerDaemon) -> str:
    """``https://127.0.0.1:PORT`` of a running daemon."""
    assert daemon.http is not None, "the daemon has not started"
    return f"https://127.0.0.1:{daemon.http.port}"


def loopback_client_tls() -> ssl.SSLContext:
    """A client context that trusts ``loopback_tls()``'s CA only."""
    return pinned_client_context(loopback_tls().trust_pem)


def loopback_session(**kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp client that trusts ``loopback_tls()``'s CA only."""
    return https_session(loopback_tls().trust_pem, **kwargs)
