"""The installed product holds every file it reads: install-agent and an agent release
install a wheel, not this checkout, and a wheel holds only what pyproject lists."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("controller", "edge_agent", "protocols")


def _tracked() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    out = subprocess.run(
        ["git", "ls-files", "-z", "--", *PACKAGES, "pyproject.toml"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    return [name for name in out.stdout.decode().split("\0") if name]


def test_the_wheel_holds_every_file_of_the_packages(tmp_path: pathlib.Path) -> None:
    tracked = _tracked()
    source = tmp_path / "src"
    for name in tracked:  # the working tree's files, as git knows them (no build leftovers)
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("classbridge-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        held = set(zf.namelist())
    wanted = {name for name in tracked if name != "pyproject.toml"}
    missing = sorted(wanted - held)
    assert not missing, (
        f"{len(missing)} file(s) of the packages are not in the wheel, so an installed "
        f"agent or controller would not find them: {missing[:20]}; list them under "
        "[tool.setuptools.package-data] in pyproject.toml"
    )
