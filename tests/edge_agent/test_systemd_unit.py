"""The agent's systemd unit passes systemd-analyze verify and keeps its promises."""

from __future__ import annotations

import configparser
import os
import pathlib
import shutil
import subprocess

from helpers import needs

UNIT = pathlib.Path(__file__).resolve().parents[2] / "systemd" / "classroom-agent.service"


@needs(shutil.which("systemd-analyze") is not None, "no systemd-analyze (apt-get install systemd)")
def test_unit_verifies(tmp_path: pathlib.Path) -> None:
    # verify needs ExecStart's binary to exist: point it at a stand-in in a temp prefix
    binary = tmp_path / ".venv" / "bin" / "classroom-agent"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    unit = tmp_path / "classroom-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/classbridge", str(tmp_path)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "classroom-agent.service" in line and "User=classbridge" not in line
    ]
    assert done.returncode == 0 or not problems, done.stdout + done.stderr
    assert not problems, "\n".join(problems)


def test_unit_has_notify_watchdog_user_and_device_access() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    service = parser["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert set(service["SupplementaryGroups"].split()) >= {"video", "audio"}
    assert service["StateDirectory"] and service["LogsDirectory"]
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    text = UNIT.read_text()
    assert "DeviceAllow=char-video4linux rw" in text and "DeviceAllow=char-alsa rw" in text


def test_the_shaper_privilege_is_an_opt_in_drop_in() -> None:
    unit = UNIT.read_text()
    assert "CAP_NET_ADMIN" not in unit  # not granted by default
    drop_in = UNIT.parent / "classroom-agent.service.d" / "shaper.conf.example"
    assert "AmbientCapabilities=CAP_NET_ADMIN" in drop_in.read_text()
