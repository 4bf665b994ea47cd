"""``classroom-controller user …`` and ``token …``: console users and API tokens, worked on
the state directory's database directly (the daemon need not run)."""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Annotated

import typer
from sqlalchemy import select

from controller.auth import accounts, audit, scope
from controller.auth.roles import ROLES
from controller.common.cli_common import DEFAULT_STATE, Database, JsonOut, StateDir, fail, open_db
from controller.common.errors import ControllerError
from controller.common.security import SecurityPolicy
from controller.common.timeparse import parse_duration
from controller.db.models import ConsoleUser

user_app = typer.Typer(help="Console users: sign-in, roles, throttling.", no_args_is_help=True)
token_app = typer.Typer(
    help="API bearer tokens for scripts and integrations.", no_args_is_help=True
)


def register_auth_commands(app: typer.Typer) -> None:
    """Add ``user`` and ``token`` to the controller's command line."""
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            fail("--password-stdin: standard input held no password line")
        return line
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Sign-in name, e.g. li.wei")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")],
    display_name: Annotated[str, typer.Option(help="Name shown in the console.")] = "",
    school: Annotated[
        str | None,
        typer.Option(help="Limit the user to this school's classrooms (default: the county)."),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    no_password: Annotated[
        bool,
        typer.Option("--no-password", help="An account for API tokens only; cannot sign in."),
    ] = False,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Add a user (asks for the password unless --password-stdin or --no-password)."""
    password = None if no_password else _read_password(password_stdin)
    with open_db(state_dir, database)() as db:
        try:
            user = accounts.add_user(db, username, role, password, display_name)
            if school is not None:
                scope.set_school(db, username, school)
        except ControllerError as err:
            fail(str(err))
    where = f"school {school}" if school is not None else "the county"
    typer.echo(f"user {user.username} added with role {user.role}, seeing {where}")


@user_app.command("list")
def user_list(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: JsonOut = False,
) -> None:
    """List users with their role and lock state."""
    with open_db(state_dir, database)() as db:
        rows = [
            accounts.user_document(u)
            for u in db.scalars(select(ConsoleUser).order_by(ConsoleUser.username)).all()
        ]
    if json_out:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        state = f"locked until {r['locked_until']}" if r["locked"] else "active"
        state = "disabled" if r["disabled"] else state
        where = r["school"] or "(county)"
        typer.echo(
            f"{r['username']:<24} {r['role']:<11} {state:<12} {where:<20} {r['display_name']}"
        )


@user_app.command("school")
def user_school(
    username: str,
    school: Annotated[
        str | None, typer.Argument(help="The school (as classrooms name it) to limit to.")
    ] = None,
    county: Annotated[
        bool, typer.Option("--county", help="See every school of the county instead.")
    ] = False,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Limit a user to one school's classrooms, lessons, recordings and patrol (or --county)."""
    if (school is not None) == county:
        fail("give either a SCHOOL or --county")
    with open_db(state_dir, database)() as db:
        try:
            scope.set_school(db, username, school)
        except ControllerError as err:
            fail(str(err))
    typer.echo(f"{username} now sees {'the county' if school is None else 'school ' + school}")


@user_app.command("passwd")
def user_passwd(
    username: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Set a user's password (this also unlocks the user and signs out every session)."""
    password = _read_password(password_stdin)
    with open_db(state_dir, database)() as db:
        try:
            ended = accounts.set_password(db, username, password)
        except ControllerError as err:
            fail(str(err))
        audit.record(db, "password_changed", username="cli", target=username)
    typer.echo(f"password of {username} changed; {ended} session(s) signed out")


@user_app.command("unlock")
def user_unlock(
    username: str, state_dir: StateDir = pathlib.Path(DEFAULT_STATE), database: Database = None
) -> None:
    """Clear a user's failed sign-ins, so no address has to wait before trying again."""
    with open_db(state_dir, database)() as db:
        try:
            accounts.unlock(db, username)
        except ControllerError as err:
            fail(str(err))
    typer.echo(f"{username} unlocked")


def _set_disabled(
    username: str, disabled: bool, state_dir: pathlib.Path, database: str | None
) -> None:
    with open_db(state_dir, database)() as db:
        try:
            accounts.set_disabled(db, username, disabled)
        except ControllerError as err:
            fail(str(err))
        action = "user_disabled" if disabled else "user_enabled"
        audit.record(db, action, username="cli", target=username)


@user_app.command("disable")
def user_disable(
    username: str, state_dir: StateDir = pathlib.Path(DEFAULT_STATE), database: Database = None
) -> None:
    """Disable a user: their sessions end now; sign-in and their API tokens are refused."""
    _set_disabled(username, True, state_dir, database)
    typer.echo(f"{username} disabled; their sessions have ended")


@user_app.command("enable")
def user_enable(
    username: str, state_dir: StateDir = pathlib.Path(DEFAULT_STATE), database: Database = None
) -> None:
    """Enable a disabled user again."""
    _set_disabled(username, False, state_dir, database)
    typer.echo(f"{username} enabled")


@token_app.command("create")
def token_create(
    username: Annotated[str, typer.Argument(help="The user the token acts as (and its role).")],
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    valid: Annotated[
        str, typer.Option(help="How long it works, e.g. 90d (the default) or 12h; at most 730d.")
    ] = "",
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Print a new API token (shown once; only its hash is kept)."""
    try:
        lifetime = (
            SecurityPolicy(api_token_lifetime=parse_duration(valid)) if valid else SecurityPolicy()
        ).api_token_lifetime
    except ValueError as err:
        fail(f"--valid: {err}")
    with open_db(state_dir, database)() as db:
        try:
            token = accounts.create_api_token(db, username, label, lifetime)
        except ControllerError as err:
            fail(str(err))
    typer.echo(token)


@token_app.command("list")
def token_list(
    username: Annotated[str | None, typer.Argument(help="Only this user's tokens.")] = None,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: JsonOut = False,
) -> None:
    """List API tokens: id, user, state (active, expired, revoked), expiry and label."""
    with open_db(state_dir, database)() as db:
        rows = accounts.list_api_tokens(db, username)
    if json_out:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        typer.echo(
            f"{r['id']}  {r['user']:<20} {r['state']:<8} expires {r['expires_at'] or 'never'}"
            f"  {r['label']}"
        )


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The id `token list` shows.")],
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Revoke an API token: it stops working at once."""
    with open_db(state_dir, database)() as db:
        try:
            doc = accounts.revoke_api_token(db, token_id)
        except ControllerError as err:
            fail(str(err))
        audit.record(db, "api_token_revoked", username="cli", target=str(doc["id"]))
    typer.echo(f"token {doc['id']} of {doc['user']} revoked")
