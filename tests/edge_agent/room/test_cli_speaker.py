"""``classroom-agent test speaker`` against a real PulseAudio."""

from __future__ import annotations

import json
import pathlib

from typer.testing import CliRunner

from edge_agent.cli import app
from tests.peers.pulse import PulseServer

runner = CliRunner()
SYNTHETIC = pathlib.Path(__file__).resolve().parents[3] / "hardware_profiles" / "synthetic.toml"


def _profile(tmp_path: pathlib.Path, sink: str) -> pathlib.Path:
    path = tmp_path / "profile.toml"
    path.write_text(SYNTHETIC.read_text() + f'\n[speakers]\ndriver = "pulse"\ndevice = "{sink}"\n')
    return path


def test_tone_is_heard(pulse_server: PulseServer, pulse_sink: str, tmp_path: pathlib.Path) -> None:
    args = ["test", "speaker", "--profile", str(_profile(tmp_path, pulse_sink))]
    result = runner.invoke(app, [*args, "--json"], env={"PULSE_SERVER": pulse_server.server})
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["heard"] and abs(found["level_dbfs"] - (-12.0)) < 1.5, found
    assert found["delay_ms"] is not None
    text = runner.invoke(app, [*args, "--pulse-server", pulse_server.server])
    assert text.exit_code == 0 and text.output.startswith("OK speakers"), text.output


def test_missing_sink_lists_the_sinks(
    pulse_server: PulseServer, pulse_sink: str, tmp_path: pathlib.Path
) -> None:
    args = ["test", "speaker", "--profile", str(_profile(tmp_path, "nowhere"))]
    result = runner.invoke(app, [*args, "--pulse-server", pulse_server.server])
    assert result.exit_code == 1
    assert "FAIL speakers" in result.output and pulse_sink in result.output


def test_bad_profile_is_exit_2(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("nonsense = [")
    assert runner.invoke(app, ["test", "speaker", "--profile", str(bad)]).exit_code == 2


def test_mic_reads_a_pulse_microphone(
    pulse_server: PulseServer, pulse_sink: str, tmp_path: pathlib.Path
) -> None:
    from tests.peers.pulse import tone

    path = tmp_path / "profile.toml"
    path.write_text(
        SYNTHETIC.read_text().replace(
            'name = "mic"\nkind = "microphone"\nrole = "room"\ndriver = "synthetic"',
            f'name = "mic"\nkind = "microphone"\nrole = "room"\ndriver = "pulse"\n'
            f'device = "{pulse_sink}.monitor"',
        )
    )
    player = pulse_server.player(pulse_sink, tone(440.0, 4.0, -12.0))
    try:
        result = runner.invoke(
            app,
            ["test", "mic", "mic", "--profile", str(path), "--seconds", "1", "--json"],
            env={"PULSE_SERVER": pulse_server.server},
        )
    finally:
        player.stop()
    doc = json.loads(result.output.strip().splitlines()[-1])
    assert result.exit_code == 0 and doc["ok"], result.output
    assert doc["peak_dbfs"] > -20.0
