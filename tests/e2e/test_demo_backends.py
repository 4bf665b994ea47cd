"""``scripts/demo --media-plane janus``: the demo's lesson on a Janus the demo starts."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from benchlib import janus_plane

REPO = pathlib.Path(__file__).resolve().parents[2]
DEMO = REPO / "scripts" / "demo.py"

pytestmark = [pytest.mark.e2e]


def _demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        capture_output=True,
        text=True,
        timeout=170,
        env=env,
        cwd=REPO,
    )


@pytest.mark.janus
@pytest.mark.solo
@pytest.mark.timeout(180)
def test_the_demo_runs_its_lesson_on_janus(tmp_path: pathlib.Path) -> None:
    why = janus_plane.missing()
    if why is not None:
        pytest.skip(why)
    out = tmp_path / "summary.json"
    done = _demo("--media-plane", "janus", "--seconds", "10", "--json", str(out), "--clean")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(out.read_text())
    print(
        "demo on Janus: delivery",
        summary["delivery_ratio"],
        "latency",
        summary["latency_ms"],
        "mouth to ear",
        summary["mouth_to_ear_ms"],
        "on screen",
        summary["on_screen_ms"],
    )
    assert summary["backend"] == "janus"
    assert summary["placement"] and "on Janus instance demo" in summary["placement"][0]
    assert "media backend: janus" in done.stdout
    assert len(summary["delivery_ratio"]) == 5, summary["delivery_ratio"]
    for key, ratio in summary["delivery_ratio"].items():
        assert ratio >= 0.9, f"{key} delivered only {ratio:.1%} through Janus"
    assert summary["latency_ms"]["p50"] is not None
    # The receiving room heard the lead's microphone and saw its camera.
    assert summary["mouth_to_ear_ms"]["n"] > 0 and summary["on_screen_ms"]["n"] > 0, summary
    assert all(c["ok"] for c in summary["recording_checks"]), summary["recording_checks"]


def test_the_demo_on_janus_names_what_is_missing() -> None:
    # No janus on the PATH: the demo stops before starting anything, saying what to do.
    env = {**os.environ, "PATH": str(pathlib.Path(sys.executable).parent)}
    done = _demo("--media-plane", "janus", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the janus program is missing" in done.stderr, done.stderr
    assert "scripts/bootstrap janus" in done.stderr, done.stderr
    assert "lesson" not in done.stdout, done.stdout
