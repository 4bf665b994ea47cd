"""``classroom-controller serve --media-plane FILE``: a bad file stops the controller
before it starts, naming the file and the setting."""

from __future__ import annotations

import pathlib

from typer.testing import CliRunner

from controller.app.cli import app


def test_serve_refuses_a_bad_media_plane_file_naming_the_setting(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "plane.toml"
    bad.write_text('[media_plane]\nbackend = "janus"\n')  # janus, and no instance
    bad.chmod(0o600)
    out = CliRunner().invoke(
        app, ["serve", "--state-dir", str(tmp_path / "state"), "--media-plane", str(bad)]
    )
    assert out.exit_code == 2, out.output
    assert str(bad) in out.output and "backend" in out.output
    assert not (tmp_path / "state").exists()  # nothing was started or written


def test_serve_refuses_a_missing_media_plane_file(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nowhere.toml"
    out = CliRunner().invoke(
        app, ["serve", "--state-dir", str(tmp_path / "state"), "--media-plane", str(missing)]
    )
    assert out.exit_code == 2 and str(missing) in out.output, out.output
