"""``classroom-controller user …`` and ``token …``: console users and API tokens, worked on
the state directory's database directly (the daemon need not run)."""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Annotated

import typer
from sqlalchemy import select

from controller.auth import accounts
from controller.auth.roles import ROLES
from controller.cli_common import DEFAULT_STATE, JsonOut, StateDir, fail, open_db
from controller.db.models import ConsoleUser
from controller.errors import ControllerError

user_app = typer.Typer(help="Console users: sign-in, roles, lock-out.", no_args_is_help=True)
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
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    no_password: Annotated[
        bool,
        typer.Option("--no-password", help="An account for API tokens only; cannot sign in."),
    ] = False,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
) -> None:
    """Add a user (asks for the password unless --password-stdin or --no-password)."""
    password = None if no_password else _read_password(password_stdin)
    with open_db(state_dir)() as db:
        try:
            user = accounts.add_user(db, username, role, password, display_name)
        except ControllerError as err:
            fail(str(err))
    typer.echo(f"user {user.username} added with role {user.role}")


@user_app.command("list")
def user_list(state_dir: StateDir = pathlib.Path(DEFAULT_STATE), json_out: JsonOut = False) -> None:
    """List users with their role and lock state."""
    with open_db(state_dir)() as db:
        rows = [
            accounts.user_document(u)
            for u in db.scalars(select(ConsoleUser).order_by(ConsoleUser.username)).all()
        ]
    if json_out:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        state = f"locked until {r['locked_until']}" if r["locked"] else "active"
        typer.echo(f"{r['username']:<24} {r['role']:<11} {state:<12} {r['display_name']}")


@user_app.command("passwd")
def user_passwd(
    username: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
) -> None:
    """Set a user's password (this also unlocks the user)."""
    password = _read_password(password_stdin)
    with open_db(state_dir)() as db:
        try:
            accounts.set_password(db, username, password)
        except ControllerError as err:
            fail(str(err))
    typer.echo(f"password of {username} changed")


@user_app.command("unlock")
def user_unlock(username: str, state_dir: StateDir = pathlib.Path(DEFAULT_STATE)) -> None:
    """Lift a lock-out after too many failed sign-ins."""
    with open_db(state_dir)() as db:
        try:
            accounts.unlock(db, username)
        except ControllerError as err:
            fail(str(err))
    typer.echo(f"{username} unlocked")


@token_app.command("create")
def token_create(
    username: Annotated[str, typer.Argument(help="The user the token acts as (and its role).")],
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
) -> None:
    """Print a new API token (shown once; only its hash is kept)."""
    with open_db(state_dir)() as db:
        try:
            token = accounts.create_api_token(db, username, label)
        except ControllerError as err:
            fail(str(err))
    typer.echo(token)
