"""Backup and restore of a controller's state: taken while it runs, restored into a new
directory, and a controller started there knows its agents and users."""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import stat
import tarfile

import pytest
from helpers import free_port_pair, https_session, issue_token
from sqlalchemy import select
from typer.testing import CliRunner

from controller.app.cli import app
from controller.app.daemon import ControllerConfig, ControllerDaemon
from controller.auth import passwords
from controller.auth.accounts import add_user, create_api_token
from controller.db.models import ConsoleUser
from edge_agent.enrol import enrol
from edge_agent.link import ControlLink
from protocols.messages import CommandAck, Heartbeat, Register

pytestmark = pytest.mark.timeout(90)
PASSWORD = "correct horse battery staple 42"


def mode(path: pathlib.Path) -> int:
    """Permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


async def test_backup_restore_keeps_agents_and_users(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    state = controller.config.state_dir
    token = issue_token(state, "city-101")
    identity = await enrol(
        f"tcp://127.0.0.1:{controller.config.control_port}", token, tmp_path / "agent"
    )
    with controller._sessions() as db:
        add_user(db, "zhang.wei", "scheduler", PASSWORD)
        api_token = create_api_token(db, "zhang.wei")
    ca_before = (state / "tls" / "ca.pem").read_bytes()  # the county CA agents pinned
    archive = tmp_path / "backups" / "controller.tar.gz"

    runner = CliRunner()
    done = runner.invoke(app, ["backup", str(archive), "--state-dir", str(state)])  # running
    assert done.exit_code == 0, done.output
    assert mode(archive) == 0o600
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"controller.sqlite3", "controller.curve", "tls/ca.key", "tls/ca.pem"} <= names
    assert {"tls/server.key", "tls/server.pem", "backup.json"} <= names
    await controller.stop()

    # An existing controller is not overwritten by accident.
    refused = runner.invoke(app, ["restore", str(archive), "--state-dir", str(state)])
    assert refused.exit_code == 2 and "--force" in refused.output

    fresh = tmp_path / "restored" / "controller"
    done = runner.invoke(app, ["restore", str(archive), "--state-dir", str(fresh)])
    assert done.exit_code == 0, done.output
    assert mode(fresh) == 0o700
    assert all(mode(p) == 0o600 for p in fresh.rglob("*") if p.is_file())
    assert (fresh / "tls" / "ca.pem").read_bytes() == ca_before

    restored = ControllerDaemon(
        ControllerConfig(
            state_dir=fresh, control_port=free_port_pair(), http_port=0, heartbeat_s=0.3
        )
    )
    await restored.start()
    try:
        # The agent (its key in the restored key book, the controller's key it pinned) joins.
        moved = dataclasses.replace(
            identity, controller=f"tcp://127.0.0.1:{restored.config.control_port}"
        )

        async def ack(env: object) -> CommandAck:
            return CommandAck(command="x", ok=True)

        link = ControlLink(
            moved,
            lambda: Register(
                classroom_id="city-101",
                agent_version="test",
                profile_name="synthetic",
                profile_digest="0" * 64,
                inventory=[],
            ),
            lambda seq: Heartbeat(seq=seq, cpu_pct=1, mem_pct=1, disk_free_bytes=1, disk_pct=1),
            ack,  # type: ignore[arg-type]
            heartbeat_interval=0.3,
        )
        await link.start()
        try:
            await asyncio.wait_for(link.registered.wait(), 10)
        finally:
            await link.stop()
        # The user's API token and password still work.
        assert restored.http is not None
        # Over HTTPS with the county CA the agents pinned before the restore.
        url = f"https://127.0.0.1:{restored.http.port}/api/v1/classrooms"
        async with (
            https_session(ca_before.decode()) as http,
            http.get(url, headers={"Authorization": f"Bearer {api_token}"}) as reply,
        ):
            assert reply.status == 200, await reply.text()
            assert "city-101" in await reply.text()
        with restored._sessions() as db:
            user = db.scalar(select(ConsoleUser).where(ConsoleUser.username == "zhang.wei"))
            assert user is not None and passwords.verify(user.password_hash, PASSWORD)
    finally:
        await restored.stop()

    # --force replaces it, keeping the old directory beside it.
    done = runner.invoke(app, ["restore", str(archive), "--state-dir", str(fresh), "--force"])
    assert done.exit_code == 0, done.output
    assert [p.name.startswith("controller.replaced-") for p in fresh.parent.iterdir()].count(
        True
    ) == 1


def test_a_damaged_archive_is_refused(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state"
    issue_token(state, "city-101")
    archive = tmp_path / "b.tar.gz"
    runner = CliRunner()
    assert runner.invoke(app, ["backup", str(archive), "--state-dir", str(state)]).exit_code == 0
    archive.write_bytes(archive.read_bytes()[:-40])
    done = runner.invoke(app, ["restore", str(archive), "--state-dir", str(tmp_path / "new")])
    assert done.exit_code == 2 and "not a readable controller backup" in done.output
    assert not (tmp_path / "new").exists()
