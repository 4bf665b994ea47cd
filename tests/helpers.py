"""Helpers shared by tests: free ports, enrolment tokens."""

from __future__ import annotations

import pathlib
import random
import socket

from controller.db.session import database_url, make_engine, migrate, sessions
from controller.keys import ServerKeys
from controller.registry import add_classroom

REPO = pathlib.Path(__file__).resolve().parent.parent


def free_port_pair() -> int:
    """A port p such that p and p+1 are both free on loopback."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")


def issue_token(state_dir: pathlib.Path, classroom_id: str) -> str:
    """Add a classroom to a controller state dir and return its enrolment token."""
    url = database_url(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    migrate(url)
    keys = ServerKeys.load_or_create(state_dir)
    with sessions(make_engine(url))() as db:
        return add_classroom(db, classroom_id, classroom_id, "test school", keys.public)
