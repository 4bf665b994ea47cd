"""The controller's systemd unit verifies and is hardened to an exposure of at most 4.0."""

from __future__ import annotations

import configparser
import os
import pathlib
import subprocess

from helpers import needs
from securitylib.systemd_exposure import CONTROLLER_UNIT, available, unit_exposure, unit_report

UNIT = CONTROLLER_UNIT
MAX_EXPOSURE = 4.0


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


@needs(available(), "no systemd-analyze (apt-get install systemd)")
def test_unit_verifies(tmp_path: pathlib.Path) -> None:
    binary = tmp_path / ".venv" / "bin" / "classroom-controller"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    unit = tmp_path / "classroom-controller.service"
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
        if "classroom-controller.service" in line and "User=classbridge" not in line
    ]
    assert not problems, "\n".join(problems)


def test_state_is_private_and_no_capability_is_kept() -> None:
    service = _service()
    assert service["UMask"] == "0077" and service["StateDirectoryMode"] == "0700"
    assert service["CapabilityBoundingSet"] == "" and service["NoNewPrivileges"] == "yes"
    assert service["SystemCallArchitectures"] == "native"
    assert service["MemoryMax"]


@needs(available(), "no systemd-analyze (apt-get install systemd)")
def test_exposure_is_at_most_4() -> None:
    exposure = unit_exposure(UNIT)
    assert exposure <= MAX_EXPOSURE, unit_report(UNIT)
