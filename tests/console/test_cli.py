"""``classroom-controller user …`` and ``token create`` on a state directory."""

from __future__ import annotations

import json
import pathlib

from typer.testing import CliRunner

from controller.auth.accounts import sha256_hex
from controller.cli import app
from controller.cli_common import open_db
from controller.db.models import ApiToken, ConsoleUser


def test_user_lifecycle_and_token(tmp_path: pathlib.Path) -> None:
    state = ["--state-dir", str(tmp_path)]
    run = CliRunner().invoke
    out = run(
        app,
        ["user", "add", "li", "--role", "scheduler", "--password-stdin", *state],
        input="long enough pw\n",
    )
    assert out.exit_code == 0, out.output
    out = run(app, ["user", "add", "li", "--role", "scheduler", "--no-password", *state])
    assert out.exit_code == 2 and "exists already" in out.output
    out = run(app, ["user", "add", "x", "--role", "boss", "--no-password", *state])
    assert out.exit_code == 2 and "unknown role 'boss'" in out.output
    out = run(
        app,
        ["user", "add", "y", "--role", "inspector", "--password-stdin", *state],
        input="short\n",
    )
    assert out.exit_code == 2 and "at least 8 characters" in out.output
    out = run(app, ["user", "passwd", "li", "--password-stdin", *state], input="another pw 2\n")
    assert out.exit_code == 0, out.output
    out = run(app, ["user", "unlock", "li", *state])
    assert out.exit_code == 0 and "unlocked" in out.output
    out = run(app, ["user", "list", "--json", *state])
    [doc] = json.loads(out.output)
    assert doc["username"] == "li" and doc["role"] == "scheduler" and not doc["locked"]
    out = run(app, ["token", "create", "li", "--label", "sync", *state])
    token = out.output.strip()
    assert out.exit_code == 0 and token.startswith("cbt_")
    with open_db(tmp_path)() as db:
        row = db.get(ApiToken, sha256_hex(token))
        assert row is not None and row.label == "sync"
        user = db.get(ConsoleUser, row.user_id)
        assert user is not None and user.password_hash.startswith("$argon2id$")
    out = run(app, ["token", "create", "nobody", *state])
    assert out.exit_code == 2 and "no user 'nobody'" in out.output
