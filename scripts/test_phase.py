"""Run one phase of the test suite under a deadline, and say what hung if it overruns.

    python scripts/test_phase.py LOG DEADLINE_S -- pytest-args...

pytest runs in a session of its own, its output both printed and kept in LOG. If it is
still running at the deadline, every Python process of the session is asked for its
threads' stacks (tests/conftest.py registers faulthandler on SIGUSR1, writing to a file of
its own in CLASSBRIDGE_STACKS_DIR), those are printed,
and the whole session is ended: pytest, its workers and whatever they started (agents,
PulseAudio servers, Xvfb), so that nothing of it is left to disturb the next phase.
Exits with pytest's code, or 124 (as timeout(1) does) after a deadline.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time


def _session_pids(sid: int) -> list[int]:
    """The processes whose session is ``sid``, read from /proc."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after pid and (comm): state ppid pgrp session
            found.append(int(entry.name))
    return found


def _is_python(pid: int) -> bool:
    try:
        return "python" in pathlib.Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return False


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    log, deadline = pathlib.Path(argv[0]), float(argv[1])
    stacks = pathlib.Path(tempfile.mkdtemp(prefix="classbridge-stacks-"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *argv[3:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "CLASSBRIDGE_STACKS_DIR": str(stacks)},
    )
    assert proc.stdout is not None
    out = proc.stdout

    def copy() -> None:
        with log.open("wb") as kept:
            for chunk in iter(lambda: os.read(out.fileno(), 65536), b""):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                kept.write(chunk)

    copier = threading.Thread(target=copy, daemon=True)
    copier.start()
    try:
        code = proc.wait(deadline)
    except subprocess.TimeoutExpired:
        print(
            f"\n=== this phase ran past its deadline of {deadline:.0f} s; the stacks of "
            "its Python processes follow ===",
            flush=True,
        )
        for pid in _session_pids(proc.pid):
            if _is_python(pid):
                os.kill(pid, signal.SIGUSR1)
        time.sleep(5)
        for dump in sorted(stacks.glob("*.txt")):
            text = dump.read_text(errors="replace").strip()
            if text:
                print(f"--- process {dump.stem} ---\n{text}", flush=True)
        code = 124
    # Whatever the phase started goes with it.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _session_pids(proc.pid)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(3)
    proc.wait()
    copier.join(10)
    if code != 124:
        # a test's GIL-free watchdog (tests/conftest.py) ended a stuck worker, or a worker
        # crashed in native code: say where
        for dump in sorted(stacks.glob("*.txt")):
            text = dump.read_text(errors="replace").strip()
            if text:
                print(
                    f"\n=== process {dump.stem} was ended by a stuck test's watchdog or "
                    f"crashed; its threads were ===\n{text}",
                    flush=True,
                )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
