"""What every ``classroom-controller`` command shares: the state directory option, the
database it holds (or the one ``--database`` names), and how a command fails."""

from __future__ import annotations

import os
import pathlib
from typing import Annotated, NoReturn

import typer
from sqlalchemy.orm import Session, sessionmaker

from controller.common.security import SecurityPolicy
from controller.common.timeparse import parse_duration
from controller.db.errors import DatabaseError
from controller.db.reach import wait_for_database
from controller.db.session import database_url, make_engine, migrate, sessions
from controller.db.urls import normalise
from protocols.private_files import private_dir

DEFAULT_STATE = os.environ.get("CLASSBRIDGE_CONTROLLER_STATE", "/var/lib/classbridge/controller")
StateDir = Annotated[
    pathlib.Path,
    typer.Option(
        "--state-dir", envvar="CLASSBRIDGE_CONTROLLER_STATE", help="Controller state directory."
    ),
]
# The environment variable keeps the password out of the process list.
Database = Annotated[
    str | None,
    typer.Option(
        "--database",
        envvar="CLASSBRIDGE_DATABASE_URL",
        show_envvar=True,
        help="postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB, or sqlite:///PATH; "
        "default: SQLite in the state directory.",
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def chosen_database(state_dir: pathlib.Path, database: str | None) -> str:
    """The database URL a command uses: ``--database`` (or CLASSBRIDGE_DATABASE_URL),
    else SQLite in ``state_dir``."""
    if not database:
        return database_url(state_dir)
    try:
        return normalise(database)
    except ValueError as err:
        fail(str(err))


def open_db(state_dir: pathlib.Path, database: str | None = None) -> sessionmaker[Session]:
    """The controller database, migrated to the current schema; a database that does not
    answer fails the command at once, naming it without its password."""
    private_dir(state_dir)
    url = chosen_database(state_dir, database)
    try:
        wait_for_database(url, wait_s=0)
    except DatabaseError as err:
        fail(str(err))
    migrate(url)
    return sessions(make_engine(url))


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def security_policy(**spans: str) -> SecurityPolicy:
    """The policy from ``--option DURATION`` pairs; a bad one fails naming its option."""
    values = {}
    for name, text in spans.items():
        try:
            values[name] = parse_duration(text)
        except ValueError as err:
            fail(f"--{name.replace('_', '-')}: {err}")
    try:
        return SecurityPolicy(**values)
    except ValueError as err:
        fail(str(err))
