"""The technician CLI on a machine with no devices and no controller: one line per
failure, each with what to do, and meaningful exit codes."""

from __future__ import annotations

import json
import pathlib

from typer.testing import CliRunner

from edge_agent.cli import app
from tests.peers.visca_responder import ViscaResponder

ROOT = pathlib.Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_doctor_explains_each_failure_in_one_line(tmp_path: pathlib.Path) -> None:
    profile = ROOT / "hardware_profiles" / "usb-camera.toml"
    result = runner.invoke(
        app, ["doctor", "--profile", str(profile), "--state-dir", str(tmp_path / "state")]
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    failures = [line for line in lines if line.startswith("FAIL")]
    names = " ".join(failures)
    for what in ("enrolled", "controller", "clock", "device teacher", "device mic"):
        assert what in names, result.output
    assert all("→" in line for line in failures), "every failure says what to do"
    assert lines[-1].endswith("check(s) failed")

    as_json = runner.invoke(
        app,
        ["doctor", "--json", "--profile", str(profile), "--state-dir", str(tmp_path / "s")],
    )
    doc = json.loads(as_json.output)
    assert doc["ok"] is False and all(c["fix"] for c in doc["checks"] if not c["ok"])


def test_profile_validate_names_file_field_and_fix(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        (ROOT / "hardware_profiles" / "usb-camera.toml")
        .read_text()
        .replace('device = "/dev/video0"', 'device = "video0"')
    )
    result = runner.invoke(app, ["profile", "validate", str(bad)])
    assert result.exit_code == 2
    assert str(bad) in result.output and "/dev/videoN" in result.output
    ok = runner.invoke(
        app, ["profile", "validate", str(ROOT / "hardware_profiles" / "recording-classroom.toml")]
    )
    assert ok.exit_code == 0, ok.output


def test_ptz_preset_recall_against_a_visca_head(tmp_path: pathlib.Path) -> None:
    with ViscaResponder() as head:
        profile = tmp_path / "ptz.toml"
        profile.write_text(
            (ROOT / "hardware_profiles" / "recording-classroom.toml")
            .read_text()
            .replace(
                'host = "10.20.31.11"\nport = 52381', f'host = "127.0.0.1"\nport = {head.port}'
            )
        )
        result = runner.invoke(
            app, ["test", "ptz", "teacher", "board", "--profile", str(profile), "--json"]
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["number"] == 2
        assert head.recalled == [2]
        unknown = runner.invoke(app, ["test", "ptz", "teacher", "door", "--profile", str(profile)])
        assert unknown.exit_code == 2 and "teacher" in unknown.output


def test_mic_level_on_the_synthetic_microphone() -> None:
    profile = ROOT / "hardware_profiles" / "synthetic.toml"
    result = runner.invoke(app, ["test", "mic", "mic", "--profile", str(profile), "--json"])
    assert result.exit_code == 0, result.output
    assert -20 < json.loads(result.output)["peak_dbfs"] < 0
