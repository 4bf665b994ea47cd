"""The boot guard and the atomic switch: ``current`` always names a release; a pending
update that keeps failing to start, or outlives its deadline, is rolled back before the
agent starts again, and the reason is kept for the controller."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from edge_agent.updates import boot_guard


@pytest.fixture
def layout(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    releases, state = tmp_path / "releases", tmp_path / "state"
    for version in ("1.0", "1.1"):
        (releases / version / "venv" / "bin").mkdir(parents=True)
    state.mkdir()
    boot_guard.switch(releases, boot_guard.venv_dir(releases, "1.0"))
    return releases, state


def _pending(releases: pathlib.Path, state: pathlib.Path, deadline_in: float = 600) -> None:
    boot_guard.write_pending(
        state,
        {
            "rollout_id": 7,
            "version": "1.1",
            "from_version": "1.0",
            "from_venv": str(boot_guard.venv_dir(releases, "1.0")),
            "to_venv": str(boot_guard.venv_dir(releases, "1.1")),
            "deadline_at": time.time() + deadline_in,
            "starts": 0,
        },
    )
    boot_guard.switch(releases, boot_guard.venv_dir(releases, "1.1"))


def test_switch_is_a_relative_link_renamed_over_current(
    layout: tuple[pathlib.Path, pathlib.Path],
) -> None:
    releases, _ = layout
    assert os.readlink(releases / "current") == "1.0/venv"
    boot_guard.switch(releases, boot_guard.venv_dir(releases, "1.1"))
    assert boot_guard.current_venv(releases) == (releases / "1.1" / "venv").resolve()
    assert sorted(p.name for p in releases.iterdir()) == ["1.0", "1.1", "current"]


def test_a_release_that_never_comes_up_is_rolled_back(
    layout: tuple[pathlib.Path, pathlib.Path],
) -> None:
    releases, state = layout
    _pending(releases, state)
    for start in range(1, boot_guard.MAX_STARTS + 1):
        assert f"start {start} of" in boot_guard.guard(releases, state)
    assert "did not come up" in boot_guard.guard(releases, state)
    assert boot_guard.current_venv(releases) == (releases / "1.0" / "venv").resolve()
    outcome = json.loads((state / boot_guard.OUTCOME).read_text())
    assert outcome["state"] == "rolled_back" and outcome["rollout_id"] == 7
    assert outcome["detail"] == "1.1 started 3 times without being healthy; rolled back to 1.0"
    assert not (state / boot_guard.PENDING).exists()
    assert boot_guard.guard(releases, state) == "no update pending"


def test_a_release_past_its_deadline_is_rolled_back(
    layout: tuple[pathlib.Path, pathlib.Path],
) -> None:
    releases, state = layout
    _pending(releases, state, deadline_in=-1)
    assert "past its health deadline" in boot_guard.guard(releases, state)
    assert boot_guard.current_venv(releases) == (releases / "1.0" / "venv").resolve()


def test_the_guard_runs_standalone_and_never_blocks_a_start(
    layout: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    """As systemd's ExecStartPre runs it: the system Python, the file alone, no package."""
    releases, state = layout
    (state / boot_guard.PENDING).write_text('{"version": "1.1"}')  # damaged: no from_venv
    copy = tmp_path / "boot_guard.py"
    copy.write_text(pathlib.Path(boot_guard.__file__).read_text())
    done = subprocess.run(
        [sys.executable, "-I", str(copy), str(releases), str(state)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "starting 1.1" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-I", str(copy), str(releases)], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "usage" in bad.stderr
