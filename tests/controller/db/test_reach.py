"""The controller's database at start-up, against a real PostgreSQL: an unreachable one is
retried with backoff and then fails, a refusing one fails at once, and no message or log
line shows the password."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import time

import pytest
from benchlib.ports import free_port_pair
from pg_server import PgServer
from typer.testing import CliRunner

from controller.app.cli import app
from controller.app.daemon import ControllerConfig, ControllerDaemon
from controller.db.errors import DatabaseRefused, DatabaseUnreachable
from controller.db.reach import wait_for_database

SECRET = "s3cret-Pa55"


def test_an_unreachable_database_is_retried_with_backoff_then_fails_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port_pair()  # nothing listens there
    url = f"postgresql+psycopg://classbridge:{SECRET}@127.0.0.1:{port}/county"
    pauses: list[float] = []
    caplog.set_level(logging.WARNING, logger="controller.db.reach")
    with pytest.raises(DatabaseUnreachable) as err:
        wait_for_database(url, wait_s=3.0, sleep=lambda s: (pauses.append(s), time.sleep(s)))
    message = str(err.value)
    assert f"postgresql+psycopg://classbridge:***@127.0.0.1:{port}/county" in message
    assert "is unreachable (tried" in message and "Connection refused" in message
    assert pauses[:2] == [0.5, 1.0]  # then 2 s, cut to what is left of the 3 s
    assert sum(pauses) == pytest.approx(3.0, abs=0.5)
    assert len(caplog.records) == len(pauses)
    assert SECRET not in message + caplog.text


def test_the_daemon_and_the_cli_fail_clearly_on_an_unreachable_database(
    tmp_path: pathlib.Path,
) -> None:
    url = f"postgresql://classbridge:{SECRET}@127.0.0.1:{free_port_pair()}/county"
    daemon = ControllerDaemon(
        ControllerConfig(state_dir=tmp_path / "c", database_url=url, database_wait_s=0.5)
    )

    async def start() -> None:
        try:
            await daemon.start()
        finally:
            await daemon.stop()

    with pytest.raises(DatabaseUnreachable, match=r"classbridge:\*\*\*@127\.0\.0\.1"):
        asyncio.run(start())
    out = CliRunner().invoke(
        app,
        ["classroom", "list", "--state-dir", str(tmp_path / "c")],
        env={"CLASSBRIDGE_DATABASE_URL": url},
    )
    assert out.exit_code == 2 and "is unreachable" in out.output, out.output
    assert SECRET not in out.output


def test_a_wrong_password_fails_at_once_without_either_password(pg_server: PgServer) -> None:
    name = pg_server.create_database()
    url = pg_server.url(name, password=SECRET)
    started = time.monotonic()
    with pytest.raises(DatabaseRefused, match="password authentication failed") as err:
        wait_for_database(url, wait_s=30)
    assert time.monotonic() - started < 5  # not retried for 30 s: asking again is no use
    assert SECRET not in str(err.value) and pg_server.password not in str(err.value)
    assert f"classbridge:***@127.0.0.1:{pg_server.port}/{name}" in str(err.value)
    with pytest.raises(DatabaseRefused, match="does not exist"):
        wait_for_database(pg_server.url("no_such_db"), wait_s=30)
    wait_for_database(pg_server.url(name), wait_s=0)  # the right password


def test_the_cli_works_on_postgresql(pg_server: PgServer, tmp_path: pathlib.Path) -> None:
    url = pg_server.url(pg_server.create_database())
    state = str(tmp_path / "c")
    runner = CliRunner()
    out = runner.invoke(app, ["migrate", "--state-dir", state, "--database", url])
    assert out.exit_code == 0, out.output
    assert "classbridge:***@" in out.output and pg_server.password not in out.output
    env = {"CLASSBRIDGE_DATABASE_URL": url}
    out = runner.invoke(app, ["classroom", "add", "r-101", "--state-dir", state], env=env)
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["classroom", "list", "--json", "--state-dir", state], env=env)
    assert '"r-101"' in out.output, out.output
    assert not (tmp_path / "c" / "controller.sqlite3").exists()
    out = runner.invoke(app, ["backup", str(tmp_path / "b.tar"), "--state-dir", state], env=env)
    assert out.exit_code == 2 and "pg_dump" in out.output
