"""``classroom-controller notify``: status lines and a test message to a real robot."""

from __future__ import annotations

import asyncio
import pathlib

import pytest
from notify_fixtures import subscribe
from peers.robot_webhook import RobotReceiver
from typer.testing import CliRunner

from controller.app.cli import app
from controller.common.cli_common import open_db

pytestmark = pytest.mark.timeout(30)


async def test_status_and_a_test_message(tmp_path: pathlib.Path) -> None:
    db = open_db(tmp_path)
    runner = CliRunner()
    async with RobotReceiver() as robot:
        good = subscribe(db, "dingtalk", {"webhook": robot.dingtalk_url, "secret": robot.secret})
        bad = subscribe(db, "wecom", {"webhook": robot.wecom_url.replace("test-", "x")})
        args = ["--state-dir", str(tmp_path)]
        sent = await asyncio.to_thread(runner.invoke, app, ["notify", "test", str(good), *args])
        assert sent.exit_code == 0, sent.output
        assert "告警通知测试" in robot.messages[0].text
        refused = await asyncio.to_thread(runner.invoke, app, ["notify", "test", str(bad), *args])
        assert refused.exit_code == 1 and "invalid webhook url" in refused.output
    status = runner.invoke(app, ["notify", "status", *args])
    assert status.exit_code == 0 and "dingtalk" in status.output and "ok" in status.output
