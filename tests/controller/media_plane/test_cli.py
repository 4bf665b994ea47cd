"""``classroom-controller media-plane check`` against real Janus instances."""

from __future__ import annotations

import asyncio
import json
import pathlib

import pytest
from media_plane_fixtures import StartJanus
from typer.testing import CliRunner

from controller.app.cli import app

pytestmark = [pytest.mark.janus, pytest.mark.timeout(60)]


def table(name: str, api_url: str, admin_url: str, secret: str) -> str:
    return (
        f'[janus.{name}]\napi_url = "{api_url}"\nadmin_url = "{admin_url}"\n'
        f'admin_secret = "{secret}"\ncapacity = 5\n'
    )


async def test_check_prints_each_instance_and_fails_when_one_is_down(
    start_janus: StartJanus, tmp_path: pathlib.Path
) -> None:
    a, b = await start_janus(), await start_janus()
    assert a.admin_secret is not None
    runner = CliRunner()
    good = tmp_path / "good.toml"
    good.write_text(
        '[media_plane]\nbackend = "janus"\nrequest_timeout_s = 1\n'
        + table("county-a", a.url, a.admin_url, a.admin_secret)
        + table("county-b", b.url, b.admin_url, a.admin_secret)
    )
    both = await asyncio.to_thread(
        runner.invoke, app, ["media-plane", "check", "--config", str(good)]
    )
    assert both.exit_code == 0, both.output
    assert "backend: janus" in both.output
    assert "county-a             ok    Janus 1.1.2, 0 room(s)" in both.output
    assert "county-b             ok    Janus 1.1.2" in both.output
    assert f"warning: {good} holds Janus admin secrets and other users may read it" in (both.output)
    good.chmod(0o600)

    b.kill()
    down = await asyncio.to_thread(
        runner.invoke, app, ["media-plane", "check", "--config", str(good)]
    )
    assert down.exit_code == 1, down.output
    assert "county-a             ok" in down.output
    assert f"county-b             DOWN  janus instance 'county-b': api_url {b.url} unreachable" in (
        down.output
    )
    assert "error: 1 of 2 Janus instance(s) down" in down.output
    assert "warning" not in down.output

    wrong = tmp_path / "wrong.toml"
    wrong.write_text(table("county-a", a.url, a.admin_url, "a-wrong-secret"))
    wrong.chmod(0o600)
    refused = await asyncio.to_thread(
        runner.invoke, app, ["media-plane", "check", "--config", str(wrong), "--json"]
    )
    assert refused.exit_code == 1, refused.output
    doc = json.loads(refused.output.splitlines()[0])
    assert doc["backend"] == "builtin" and doc["instances"][0]["ok"] is False
    assert "admin_secret refused" in doc["instances"][0]["problem"]
    assert "a-wrong-secret" not in refused.output and a.admin_secret not in refused.output

    bad = tmp_path / "bad.toml"
    bad.write_text(table("county-a", a.url, a.admin_url, a.admin_secret).replace("= 5", "= 0"))
    invalid = runner.invoke(app, ["media-plane", "check", "--config", str(bad)])
    assert invalid.exit_code == 2
    assert f"error: {bad}: [janus.county-a] capacity: 0: must be a whole number" in invalid.output
