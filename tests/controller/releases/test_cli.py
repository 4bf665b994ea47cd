"""``classroom-controller release``: trust a key (a file or its PEM text), add a signed
wheel (a wrongly signed one refused, saying why), set rings, roll out, pause, resume,
cancel, and the status as text and JSON."""

from __future__ import annotations

import json
import pathlib

import pytest
from release_fixtures import build_wheel, make_key, sign_wheel
from typer.testing import CliRunner

from controller.app.cli import app
from controller.common.cli_common import open_db
from controller.db.models import Classroom

pytestmark = pytest.mark.timeout(60)


def test_release_commands(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "controller"
    db = open_db(state)
    with db() as s:
        s.add(Classroom(id="city-1", name="c", school="城关一小", public_key="a" * 40))
        s.add(Classroom(id="city-2", name="c", school="城关一小", public_key="b" * 40))
        s.commit()
    private, public = make_key(tmp_path / "key")
    _, stranger = make_key(tmp_path / "stranger")
    wheel = build_wheel(tmp_path / "dist", "0.3.0")
    sign_wheel(wheel, private)
    runner = CliRunner()

    def run(command: str, *args: str) -> tuple[int, str]:
        done = runner.invoke(app, ["release", command, "--state-dir", str(state), *args])
        return done.exit_code, done.output

    code, out = run("add", str(wheel))
    assert code == 2 and "no release public key" in out and "trust-key" in out
    # PEM text, as "$(cat FILE)" gives it (it starts with dashes: not an option).
    assert run("trust-key", stranger.read_text())[0] == 0
    code, out = run("add", str(wheel))
    assert code == 2 and "does not verify with release key" in out
    code, out = run("trust-key", str(tmp_path / "missing.pub"))
    assert code == 2 and "missing.pub" in out
    assert run("trust-key", str(public))[0] == 0
    code, out = run("add", str(wheel), "--notes", "fixes the panel")
    assert code == 0 and "release 0.3.0 added" in out, out

    assert run("ring", "城关一小", "early") == (0, "school 城关一小: ring early\n")
    assert run("ring", "city-2", "pilot") == (0, "classroom city-2: ring pilot\n")
    code, out = run("ring", "city-2", "canary")
    assert code == 2 and "ring 'canary': use one of pilot, early, general" in out
    code, out = run("rollout", "0.3.0", "--window", "22:00-6:00")
    assert code == 2 and "end '6:00' must be HH:MM" in out
    code, out = run("rollout", "0.3.0", "--window", "22:00-06:00")
    assert code == 0 and "rollout 1 of 0.3.0 started at ring pilot" in out, out
    assert run("pause")[0] == 0
    code, out = run("pause", "1")
    assert code == 2 and "rollout 1 is paused, not running" in out
    code, out = run("status")
    assert (
        code == 0
        and "rollout 1 of 0.3.0: paused at ring pilot — paused from the command line" in out
    )
    assert "city-1" in out and "early" in out and "fixes the panel" in out
    assert run("resume", "1")[0] == 0
    doc = json.loads(run("status", "--json")[1])
    assert doc["rollouts"][0]["state"] == "running"
    assert {t["classroom"]: t["ring"] for t in doc["rollouts"][0]["targets"]} == {
        "city-1": "early",
        "city-2": "pilot",
    }
    assert run("cancel")[0] == 0
    code, out = run("cancel")
    assert code == 2 and "no rollout running" in out
