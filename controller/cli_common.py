"""What every ``classroom-controller`` command shares: the state directory option, the
database it holds, and how a command fails."""

from __future__ import annotations

import os
import pathlib
from typing import Annotated, NoReturn

import typer
from sqlalchemy.orm import Session, sessionmaker

from controller.db.session import database_url, make_engine, migrate, sessions
from protocols.private_files import private_dir

DEFAULT_STATE = os.environ.get("CLASSBRIDGE_CONTROLLER_STATE", "/var/lib/classbridge/controller")
StateDir = Annotated[
    pathlib.Path,
    typer.Option(
        "--state-dir", envvar="CLASSBRIDGE_CONTROLLER_STATE", help="Controller state directory."
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def open_db(state_dir: pathlib.Path) -> sessionmaker[Session]:
    """The controller database in ``state_dir``, migrated to the current schema."""
    private_dir(state_dir)
    url = database_url(state_dir)
    migrate(url)
    return sessions(make_engine(url))


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
