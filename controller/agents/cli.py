"""``classroom-controller classroom …``: recording classrooms and their enrolment."""

from __future__ import annotations

import json
import pathlib
from typing import Annotated

import typer
from sqlalchemy import select

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom, get_classroom
from controller.auth import audit
from controller.common.cli_common import (
    DEFAULT_STATE,
    Database,
    JsonOut,
    StateDir,
    fail,
    open_db,
    security_policy,
)
from controller.common.errors import ControllerError
from controller.db.models import Classroom
from controller.recordings.upload_tokens import revoke

classroom_app = typer.Typer(help="Recording classrooms and their enrolment.", no_args_is_help=True)


@classroom_app.command("add")
def classroom_add(
    classroom_id: Annotated[str, typer.Argument(help="e.g. city-3-101")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    school: Annotated[str, typer.Option(help="School name.")] = "",
    valid: Annotated[
        str, typer.Option(help="How long the token works, e.g. 24h (at most 7d).")
    ] = "24h",
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: JsonOut = False,
) -> None:
    """Add a classroom (or re-issue its token) and print its one-time enrolment token.

    Enrolling with it replaces the classroom's agent key, if it had one: that raises an
    alert and an audit row."""
    ttl = security_policy(enrol_token_ttl=valid).enrol_token_ttl
    factory = open_db(state_dir, database)
    keys = ServerKeys.load_or_create(state_dir)
    with factory() as db:
        try:
            token = add_classroom(db, classroom_id, name, school, keys.public, ttl)
        except ControllerError as err:
            fail(str(err))
    if json_out:
        typer.echo(json.dumps({"classroom": classroom_id, "token": token}))
    else:
        typer.echo(token)


@classroom_app.command("revoke-upload-token")
def classroom_revoke_upload_token(
    classroom_id: Annotated[str, typer.Argument(help="e.g. city-3-101")],
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Make the classroom's upload tokens stop working now.

    A running controller gives the classroom's connected agent a fresh token within a
    minute, over its authenticated control channel; a copied token stays useless."""
    with open_db(state_dir, database)() as db:
        try:
            get_classroom(db, classroom_id)
        except ControllerError as err:
            fail(str(err))
        count = revoke(db, classroom_id)
        audit.record(
            db, "upload_token_revoked", username="cli", target=classroom_id, detail={"count": count}
        )
    typer.echo(
        f"revoked {count} upload token(s) of {classroom_id}; its agent gets a fresh one "
        "within a minute if it is connected"
    )


@classroom_app.command("list")
def classroom_list(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: JsonOut = False,
) -> None:
    """List classrooms."""
    factory = open_db(state_dir, database)
    with factory() as db:
        rooms = db.scalars(select(Classroom).order_by(Classroom.id)).all()
        rows = [
            {
                "id": r.id,
                "name": r.name,
                "school": r.school,
                "enrolled": r.public_key is not None,
                "online": r.online,
            }
            for r in rooms
        ]
    if json_out:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        state = "online" if r["online"] else ("enrolled" if r["enrolled"] else "not enrolled")
        typer.echo(f"{r['id']:<24} {state:<13} {r['name']}")
