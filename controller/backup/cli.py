"""``classroom-controller backup FILE`` and ``restore FILE``."""

from __future__ import annotations

import pathlib
from typing import Annotated

import typer

from controller.backup.archive import BackupError, backup, restore
from controller.common.cli_common import DEFAULT_STATE, Database, StateDir, fail
from controller.db.urls import hide_password, is_postgresql


def backup_cmd(
    archive: Annotated[pathlib.Path, typer.Argument(help="Archive to write (mode 0600).")],
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Back up the database (consistent while the controller runs), keys and settings."""
    if database and is_postgresql(database):
        # The archive holds the SQLite file; a PostgreSQL server has its own tools.
        fail(
            f"the database is PostgreSQL ({hide_password(database)}): back it up with "
            "pg_dump; this command backs up a SQLite database with the keys and settings"
        )
    try:
        summary = backup(state_dir, archive)
    except BackupError as err:
        fail(str(err))
    typer.echo(
        f"backed up {len(summary.files)} file(s), {sum(summary.files.values())} bytes, to "
        f"{archive} (recordings are not included: back up storage itself)"
    )


def restore_cmd(
    archive: Annotated[pathlib.Path, typer.Argument(help="Archive made by 'backup'.")],
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing state dir (kept, renamed).")
    ] = False,
) -> None:
    """Restore a backup into a fresh state directory."""
    try:
        summary = restore(archive, state_dir, force)
    except BackupError as err:
        fail(str(err))
    typer.echo(f"restored {len(summary.files)} file(s) into {state_dir}")


def register_backup_commands(app: typer.Typer) -> None:
    """Add ``backup`` and ``restore`` to the controller's command line."""
    app.command("backup")(backup_cmd)
    app.command("restore")(restore_cmd)
