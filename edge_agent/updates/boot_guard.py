"""The releases folder, its atomic ``current`` switch, and the guard that rolls a release
back when it does not come up.

Layout (``/opt/classbridge/releases`` in production)::

    releases/<version>/venv/     one virtual environment per installed release
    releases/current  -> <version>/venv    what systemd starts (ExecStart)
    releases/boot_guard.py       a copy of this file, run before every start

The switch makes a new symlink beside ``current`` and renames it over ``current``, which
is atomic: systemd starts either the old or the new release, never neither.

An update in progress is kept in the agent's state directory as ``update-pending.json``
(written before the switch); its outcome, when the agent had to roll back, as
``update-outcome.json`` until the controller has heard it. The guard runs before every
start (systemd's ``ExecStartPre=``; the tests' supervisor does the same): a pending update
started too often, or past its deadline, without reporting healthy is rolled back to the
previous release before the agent starts again. A release that crashes at import can
therefore not keep a classroom down.

Standard library only: this file is copied beside the releases and run with the system
Python, so it must work whatever release is broken.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from typing import Any

PENDING = "update-pending.json"
OUTCOME = "update-outcome.json"
CURRENT = "current"
MAX_STARTS = 3  # starts of a new release without a healthy report before it is rolled back


def venv_dir(releases: pathlib.Path, version: str) -> pathlib.Path:
    """Where a release's virtual environment lives."""
    return releases / version / "venv"


def current_venv(releases: pathlib.Path) -> pathlib.Path | None:
    """The virtual environment ``current`` points at (None: no layout here)."""
    link = releases / CURRENT
    if not link.is_symlink():
        return None
    return (releases / os.readlink(link)).resolve()


def switch(releases: pathlib.Path, venv: pathlib.Path) -> None:
    """Point ``current`` at ``venv`` atomically (a new link renamed over the old one)."""
    target = os.path.relpath(venv, releases)
    tmp = releases / f".{CURRENT}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, releases / CURRENT)
    fd = os.open(releases, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename survives a power cut
    finally:
        os.close(fd)


def _write_json(path: pathlib.Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def read_json(path: pathlib.Path) -> dict[str, Any] | None:
    """A small JSON document, or None when missing or unreadable."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def write_pending(state_dir: pathlib.Path, doc: dict[str, Any]) -> None:
    """Record the update about to be switched to (see the module docstring)."""
    _write_json(state_dir / PENDING, doc)


def clear_pending(state_dir: pathlib.Path) -> None:
    """The update is settled."""
    (state_dir / PENDING).unlink(missing_ok=True)


def write_outcome(state_dir: pathlib.Path, doc: dict[str, Any]) -> None:
    """Keep an update's failure until the controller has heard it."""
    _write_json(state_dir / OUTCOME, doc)


def roll_back(releases: pathlib.Path, state_dir: pathlib.Path, reason: str) -> bool:
    """Switch back to the release the pending update came from, and keep why. False when
    there is no pending update to roll back."""
    pending = read_json(state_dir / PENDING)
    if pending is None:
        return False
    previous = pathlib.Path(pending["from_venv"])
    switch(releases, previous)
    write_outcome(
        state_dir,
        {
            "rollout_id": pending["rollout_id"],
            "version": pending["version"],
            "state": "rolled_back",
            "detail": f"{reason}; rolled back to {pending.get('from_version', previous.name)}",
            "at": time.time(),
        },
    )
    clear_pending(state_dir)
    return True


def guard(releases: pathlib.Path, state_dir: pathlib.Path, now: float | None = None) -> str:
    """Run before each start: count the start of a pending update, and roll it back when
    it started too often or is past its deadline. Returns what it did, for the log."""
    pending = read_json(state_dir / PENDING)
    if pending is None:
        return "no update pending"
    now = time.time() if now is None else now
    starts = int(pending.get("starts", 0)) + 1
    version = pending.get("version", "?")
    if starts > MAX_STARTS:
        roll_back(
            releases, state_dir, f"{version} started {starts - 1} times without being healthy"
        )
        return f"rolled back {version}: it did not come up"
    if now > float(pending.get("deadline_at", now + 1)):
        roll_back(releases, state_dir, f"{version} was not healthy by its deadline")
        return f"rolled back {version}: past its health deadline"
    pending["starts"] = starts
    _write_json(state_dir / PENDING, pending)
    return f"starting {version} (start {starts} of at most {MAX_STARTS})"


def main(argv: list[str]) -> int:
    """``python3 boot_guard.py RELEASES_DIR STATE_DIR`` (systemd's ExecStartPre)."""
    if len(argv) != 2:
        print("usage: boot_guard.py RELEASES_DIR STATE_DIR", file=sys.stderr)
        return 2
    releases, state_dir = pathlib.Path(argv[0]), pathlib.Path(argv[1])
    try:
        print(f"boot guard: {guard(releases, state_dir)}")
    except (OSError, KeyError, ValueError) as err:
        # The agent must still start: a guard that cannot read its files says so and
        # lets the start go ahead.
        print(f"boot guard: {type(err).__name__}: {err}; starting anyway", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
