"""Failed sign-ins slow down the address that makes them, for that user name only: an
attacker elsewhere cannot keep the real user out, and nobody is ever locked out."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta

import pytest
from console.harness import PASSWORD, Console
from sqlalchemy.orm import Session, sessionmaker

from controller.auth import throttle
from controller.auth.accounts import SignIn, add_user, unlock
from controller.db.session import make_engine, migrate, sessions

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ATTACKER, ADMIN_DESK = "127.0.0.2", "127.0.0.1"


@pytest.fixture
def db(tmp_path: pathlib.Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    return sessions(make_engine(url))


def test_delays_grow_per_address_and_name_and_are_capped(db: sessionmaker[Session]) -> None:
    now = T0
    with db() as s:
        delays = [
            throttle.record_failure(s, ATTACKER, "admin", now + timedelta(hours=i))[1]
            for i in range(16)
        ]
        assert delays[:4] == [0, 0, 0, 0]
        assert delays[4:9] == [2, 4, 8, 16, 32]
        assert max(delays) == throttle.MAX_DELAY.total_seconds() == delays[-1]
        last = now + timedelta(hours=15)
        assert throttle.wait_left(s, ATTACKER, "admin", last) == 900
        assert throttle.wait_left(s, ATTACKER, "admin", last + timedelta(seconds=901)) == 0
        # Another address, or another name from the same address, is not slowed.
        assert throttle.wait_left(s, ADMIN_DESK, "admin", last) == 0
        assert throttle.wait_left(s, ATTACKER, "teacher", last) == 0
        assert throttle.throttled_pairs(s, "admin", last) == 1
        assert throttle.reset(s, "admin") == 1
        assert throttle.wait_left(s, ATTACKER, "admin", last) == 0


def test_the_right_password_from_another_address_still_signs_in(
    db: sessionmaker[Session],
) -> None:
    sign_in = SignIn()
    with db() as s:
        add_user(s, "admin", "admin", PASSWORD)
        for _ in range(5):
            assert sign_in.attempt(s, "admin", "wrong!", ATTACKER).user is None
        held = sign_in.attempt(s, "admin", PASSWORD, ATTACKER)
        assert held.user is None and held.throttled and held.retry_after == 2
        assert sign_in.attempt(s, "admin", PASSWORD, ADMIN_DESK).user is not None
        unlock(s, "admin")  # the administrator's way in, from the CLI or the API
        assert sign_in.attempt(s, "admin", PASSWORD, ATTACKER).user is not None


async def test_failures_from_one_address_do_not_lock_out_another(console: Console) -> None:
    url = f"{console.base}/api/v1/session"
    async with console.session(local_addr=(ATTACKER, 0)) as http:
        answers = []
        for _ in range(5):
            async with http.post(url, json={"username": "locky", "password": "nope"}) as r:
                answers.append((r.status, r.headers.get("Retry-After")))
        assert answers[:4] == [(401, None)] * 4 and answers[4] == (401, "2")
        # Even the right password waits, from this address: 429 with Retry-After.
        async with http.post(url, json={"username": "locky", "password": PASSWORD}) as r:
            assert r.status == 429 and int(r.headers["Retry-After"]) in (1, 2)
            assert "wait" in (await r.json())["error"]
    async with (
        console.session() as http,
        http.post(url, json={"username": "locky", "password": PASSWORD}) as r,
    ):
        assert r.status == 200, await r.text()
    async with (
        console.session(headers=console.bearer("inspector")) as http,
        http.get(f"{console.base}/api/v1/audit?user=locky&limit=50") as r,
    ):
        rows = await r.json()
    actions = [(row["action"], row["remote"]) for row in rows]
    assert actions.count(("sign_in_failed", ATTACKER)) == 6
    assert ("sign_in_throttled", ATTACKER) in actions and ("sign_in", ADMIN_DESK) in actions
