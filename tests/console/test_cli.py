"""``classroom-controller user …`` and ``token create`` on a state directory."""

from __future__ import annotations

import json
import pathlib

from typer.testing import CliRunner

from controller.agents.registry import add_classroom
from controller.app.cli import app
from controller.auth.accounts import sha256_hex
from controller.common.cli_common import open_db
from controller.db.models import ApiToken, ConsoleUser


def test_user_lifecycle_and_token(tmp_path: pathlib.Path) -> None:
    state = ["--state-dir", str(tmp_path)]
    run = CliRunner().invoke
    out = run(
        app,
        ["user", "add", "li", "--role", "scheduler", "--password-stdin", *state],
        input="Long enough pw 1\n",
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
    assert out.exit_code == 2 and "at least 12 characters" in out.output
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


def test_user_school_scope(tmp_path: pathlib.Path) -> None:
    state = ["--state-dir", str(tmp_path)]
    run = CliRunner().invoke
    with open_db(tmp_path)() as db:
        add_classroom(db, "village-201", "Village 201", "Village School", b"k" * 32)
    out = run(
        app,
        [
            *("user", "add", "wang", "--role", "technician"),
            *("--school", "Village School", "--no-password"),
            *state,
        ],
    )
    assert out.exit_code == 0 and "seeing school Village School" in out.output, out.output
    out = run(app, ["user", "add", "zhao", "--role", "admin", "--no-password", *state])
    assert out.exit_code == 0, out.output
    out = run(app, ["user", "list", "--json", *state])
    assert {d["username"]: d["school"] for d in json.loads(out.output)} == {
        "wang": "Village School",
        "zhao": None,
    }
    out = run(app, ["user", "school", "wang", "--county", *state])
    assert out.exit_code == 0 and "now sees the county" in out.output
    out = run(app, ["user", "school", "wang", "City School", *state])
    assert out.exit_code == 2 and "known schools: Village School" in out.output
    out = run(app, ["user", "school", "zhao", "Village School", *state])
    assert out.exit_code == 2 and "always sees the county" in out.output
    out = run(app, ["user", "school", "wang", *state])
    assert out.exit_code == 2 and "either a SCHOOL or --county" in out.output
    out = run(app, ["user", "list", *state])
    assert "(county)" in out.output
