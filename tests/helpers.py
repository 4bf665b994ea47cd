"""Helpers shared by tests: free ports, enrolment tokens, API tokens, real-peer marks."""

from __future__ import annotations

import os
import pathlib

import pytest
from benchlib.ports import free_port_pair
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.accounts import add_user, create_api_token
from controller.db.session import database_url, make_engine, migrate, sessions
from controller.keys import ServerKeys
from controller.registry import add_classroom

REPO = pathlib.Path(__file__).resolve().parent.parent
__all__ = ["REPO", "bearer_headers", "free_port_pair", "issue_token", "needs"]


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
