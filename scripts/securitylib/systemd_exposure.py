"""The exposure score ``systemd-analyze security`` gives a shipped unit file.

Debian 12's systemd 252 scores a unit file without loading it (``--offline=true``), and
needs neither the unit's user nor its paths to exist. Drop-ins are applied by copying the
unit and them into a scratch root (``--root``), as they would sit in /etc.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

REPO = pathlib.Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
CONTROLLER_UNIT = UNITS / "classroom-controller.service"
AGENT_UNIT = UNITS / "classroom-agent.service"
OVERALL = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


class ExposureError(RuntimeError):
    """systemd-analyze is missing or did not print a score; the message says which."""


def available() -> bool:
    """Whether this machine has systemd-analyze."""
    return shutil.which("systemd-analyze") is not None


def unit_report(
    unit: pathlib.Path, drop_ins: Sequence[pathlib.Path] = (), timeout: float = 60.0
) -> str:
    """``systemd-analyze security``'s table for ``unit`` with ``drop_ins`` applied."""
    if not available():
        raise ExposureError("systemd-analyze not found (apt-get install systemd)")
    with tempfile.TemporaryDirectory(prefix="cb-exposure-") as tmp:
        system = pathlib.Path(tmp) / "etc" / "systemd" / "system"
        system.mkdir(parents=True)
        shutil.copy(unit, system / unit.name)
        if drop_ins:
            d = system / f"{unit.name}.d"
            d.mkdir()
            for drop_in in drop_ins:
                shutil.copy(drop_in, d / (drop_in.name.removesuffix(".example")))
        done = subprocess.run(
            [
                "systemd-analyze",
                "security",
                "--offline=true",
                f"--root={tmp}",
                "--no-pager",
                unit.name,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    report = done.stdout + done.stderr
    if OVERALL.search(report) is None:
        raise ExposureError(f"{unit}: systemd-analyze printed no score:\n{report}")
    return report


def unit_exposure(unit: pathlib.Path, drop_ins: Sequence[pathlib.Path] = ()) -> float:
    """The overall exposure (0 safe … 10 exposed) of ``unit``, with ``drop_ins`` applied."""
    found = OVERALL.search(unit_report(unit, drop_ins))
    assert found is not None  # unit_report checked
    return float(found.group(1))


def exposure_figures() -> dict[str, float]:
    """The fields ``scripts/security-check --json`` reports for the shipped units."""
    return {
        "systemd_exposure_controller": unit_exposure(CONTROLLER_UNIT),
        "systemd_exposure_agent": unit_exposure(AGENT_UNIT),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(exposure_figures()))
