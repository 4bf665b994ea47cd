"""Enrol a simulated fleet in bulk, through the controller's own enrolment code.

The wire enrolment (an agent's ``EnrolRequest`` on the enrolment socket) ends in
``controller.agents.registry.enrol`` and ``KeyBook.add``. Here each classroom gets a one-time
token from ``registry.add_classroom`` and a fresh CURVE key pair, and the token is consumed
by ``registry.enrol`` with the public key, before the controller starts: the rows are the
ones the wire would write, and the controller's ``KeyBook`` loads them at start. Ten
thousand enrolments over the wire would take minutes of a benchmark whose subject is the
steady state, not the once-in-a-lifetime enrolment. Keys, not names, are what the
controller checks: the agents' DEALERs prove them in the CURVE handshake. ``wire=True``
(``--enrol wire``) leaves the enrolment to the agents, over the socket.
"""

from __future__ import annotations

import pathlib

import zmq
from sqlalchemy import event

from benchlib.agent_fleet import SimIdentity
from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom, enrol
from controller.auth.accounts import add_user, create_api_token
from controller.db.session import database_url, make_engine, migrate, sessions


def classroom_ids(n: int) -> list[str]:
    """The fleet's classroom ids: ``sim-00000`` …"""
    return [f"sim-{i:05d}" for i in range(n)]


def enrol_fleet(
    state_dir: pathlib.Path,
    n: int,
    admin: str = "bench",
    wire: bool = False,
    database: str | None = None,
) -> tuple[str, list[SimIdentity], str]:
    """Make ``n`` enrolled classrooms in the controller's state directory (before it
    starts); returns its public key, the identities and an admin API token. With
    ``wire`` the classrooms get only their tokens: each simulated agent enrols its key
    over the enrolment socket, as ``classroom-agent enroll`` does. ``database``: a
    PostgreSQL URL instead of the state directory's SQLite file."""
    keys = ServerKeys.load_or_create(state_dir)  # the controller loads the same pair
    url = database or database_url(state_dir)
    migrate(url)
    engine = make_engine(url)

    if database is None:
        # Only this set-up's connection: a crash mid-set-up costs a re-run, not data.
        @event.listens_for(engine, "connect")
        def _fast(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.execute("PRAGMA synchronous=OFF")

    identities = []
    with sessions(engine)() as db:
        for cid in classroom_ids(n):
            public, secret = zmq.curve_keypair()
            school = f"Bench school {int(cid[4:]) // 20:03d}"
            token = add_classroom(db, cid, f"Room {cid[4:]}", school, keys.public)
            if wire:
                identities.append(SimIdentity(cid, public.decode(), secret.decode(), token))
                continue
            enrolled, _ = enrol(db, token, public.decode())
            assert enrolled == cid
            identities.append(SimIdentity(cid, public.decode(), secret.decode()))
        add_user(db, admin, "admin", None)
        token = create_api_token(db, admin, "bench-control-plane")
    engine.dispose()
    return keys.public.decode(), identities, token
