"""The controller's database tests run on both engines: ``db_url`` is a SQLite file, then
a fresh database on a PostgreSQL server this pytest process starts (tests/pg_server.py).

Without PostgreSQL's binaries the PostgreSQL half is skipped, saying why, unless CI is
set: CI must run both engines, so there it fails instead.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from collections.abc import Iterator

import pytest
from pg_server import PgServer, PostgresMissing, reap_orphans, start_server

ENGINES = ("sqlite", "postgresql")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server of this pytest process (each xdist worker has its own)."""
    try:
        reap_orphans()
        server = start_server()
    except PostgresMissing as err:
        if _in_ci():
            pytest.fail(f"CI is set, so the PostgreSQL tests must run: {err}", pytrace=False)
        pytest.skip(f"PostgreSQL is not installed: {err}")
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def _database(request: pytest.FixtureRequest, engine: str, folder: pathlib.Path) -> Iterator[str]:
    """A URL of an empty database on ``engine``, dropped afterwards on PostgreSQL."""
    if engine == "sqlite":
        yield f"sqlite:///{folder / 'c.sqlite3'}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[str]:
    """An empty database of this test: SQLite, then PostgreSQL."""
    with _database(request, request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=ENGINES)
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database shared by a module's tests: SQLite, then PostgreSQL."""
    with _database(request, request.param, tmp_path_factory.mktemp("db")) as url:
        yield url
