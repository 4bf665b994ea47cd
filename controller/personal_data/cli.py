"""``classroom-controller data export|erase --teacher NAME | --classroom ID``."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Annotated

import typer

from controller.common.cli_common import DEFAULT_STATE, Database, StateDir, fail, open_db
from controller.common.errors import ControllerError
from controller.personal_data.records import Subject, erase, export
from controller.storage.backend import StorageBackend
from controller.storage.local import LocalStorage
from controller.storage.s3 import S3Location, S3Storage
from protocols.private_files import open_private

data_app = typer.Typer(
    help="Personal data of a teacher or a class: export, erase.", no_args_is_help=True
)
Teacher = Annotated[str | None, typer.Option("--teacher", help="Teacher id or name.")]
Classroom = Annotated[str | None, typer.Option("--classroom", help="Classroom id.")]


def _subject(teacher: str | None, classroom: str | None) -> Subject:
    try:
        return Subject(teacher, classroom)
    except ControllerError as err:
        fail(str(err))


@data_app.command("export")
def export_cmd(
    teacher: Teacher = None,
    classroom: Classroom = None,
    out: Annotated[
        pathlib.Path | None, typer.Option("--out", help="Write here (0600), not stdout.")
    ] = None,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Their lessons and the list of recordings that hold them, as JSON."""
    who = _subject(teacher, classroom)
    with open_db(state_dir, database)() as db:
        try:
            doc = export(db, who)
        except ControllerError as err:
            fail(str(err))
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
        return
    out.unlink(missing_ok=True)
    with os.fdopen(open_private(out), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    typer.echo(f"exported {len(doc['lessons'])} lesson(s) of {who.label} to {out}")  # type: ignore[arg-type]


@data_app.command("erase")
def erase_cmd(
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    actor: Annotated[str, typer.Option(help="Who asks (kept in the audit log).")],
    teacher: Teacher = None,
    classroom: Classroom = None,
    storage: Annotated[str, typer.Option(envvar="CLASSBRIDGE_STORAGE", help="As for serve.")] = "",
    s3_endpoint: Annotated[
        str | None, typer.Option(envvar="CLASSBRIDGE_S3_ENDPOINT", help="As for serve.")
    ] = None,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Delete their recordings from storage and the catalogue, with an audit record."""
    who = _subject(teacher, classroom)
    backend: StorageBackend = (
        S3Storage(S3Location.parse(storage, s3_endpoint))
        if storage
        else LocalStorage(state_dir / "storage")
    )
    with open_db(state_dir, database)() as db:
        try:
            done = erase(db, backend, who, actor, reason)
        except ControllerError as err:
            fail(str(err))
    typer.echo(
        f"erased recordings of {who.label} in {len(done['lessons'])} lesson(s), "  # type: ignore[arg-type]
        f"{done['bytes']} bytes; see the audit log"
    )
