"""The agent's systemd unit passes systemd-analyze verify and keeps its promises."""

from __future__ import annotations

import configparser
import os
import pathlib
import shutil
import subprocess

from helpers import needs
from securitylib.systemd_exposure import AGENT_UNIT, available, unit_exposure, unit_report

UNIT = AGENT_UNIT
SHAPER = UNIT.parent / "classroom-agent.service.d" / "shaper.conf.example"
MAX_EXPOSURE = 4.0  # 等保 level-3 review: "OK" in systemd-analyze's terms


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


@needs(shutil.which("systemd-analyze") is not None, "no systemd-analyze (apt-get install systemd)")
def test_unit_verifies(tmp_path: pathlib.Path) -> None:
    # verify needs ExecStart's binary to exist: point it at a stand-in in a temp prefix
    binary = tmp_path / "releases" / "current" / "bin" / "classroom-agent"
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
    service = _service()
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert set(service["SupplementaryGroups"].split()) >= {"video", "audio"}
    assert service["StateDirectory"] and service["LogsDirectory"]
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    text = UNIT.read_text()
    assert "DeviceAllow=char-video4linux rw" in text and "DeviceAllow=char-alsa rw" in text


def test_state_is_private_to_the_agent_user() -> None:
    service = _service()
    assert service["UMask"] == "0077" and service["StateDirectoryMode"] == "0700"
    # PrivateUsers would map the video/audio groups away from the devices' groups.
    assert "PrivateUsers" not in service and "PrivateDevices" not in service


@needs(available(), "no systemd-analyze (apt-get install systemd)")
def test_exposure_is_at_most_4() -> None:
    exposure = unit_exposure(UNIT)
    assert exposure <= MAX_EXPOSURE, unit_report(UNIT)


def test_the_shaper_privilege_is_an_opt_in_drop_in() -> None:
    unit = UNIT.read_text()
    assert "CAP_NET_ADMIN" not in unit  # not granted by default
    assert "AmbientCapabilities=CAP_NET_ADMIN" in SHAPER.read_text()


@needs(available(), "no systemd-analyze (apt-get install systemd)")
def test_the_shaper_drop_in_adds_back_only_net_admin() -> None:
    def granted(report: str) -> set[str]:
        return {
            line.split("~", 1)[1].split()[0]
            for line in report.splitlines()
            if line.startswith("✗ CapabilityBoundingSet=~")
        }

    plain = unit_report(UNIT)
    shaped = unit_report(UNIT, [SHAPER])
    assert granted(plain) == set(), plain
    # systemd-analyze groups CAP_NET_ADMIN alone in its row: the bounding set holds it.
    assert granted(shaped) == {"CAP_NET_ADMIN"}, shaped
    assert unit_exposure(UNIT, [SHAPER]) <= MAX_EXPOSURE
