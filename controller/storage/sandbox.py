"""Stitching agent-supplied segments (or cutting a clip from a recording,
``controller.library.clip``) in a sandboxed child process.

Segments come from classroom PCs, so FFmpeg's demuxers parse untrusted bytes. They do it
in a child Python process, not in the controller:

- an empty environment, no inherited file descriptors, its own session (process group);
- resource limits set by the child before it opens anything: address space, CPU seconds,
  the size of any file it writes, open files, and no core dumps;
- a wall-clock timeout, after which the whole process group is killed;
- no network, when ``unshare --net`` works here (root, or unprivileged user namespaces;
  the systemd unit's RestrictNamespaces turns it off, and the other limits remain).

A malformed segment fails as :class:`StitchError` naming it; a child that dies, or hangs,
fails as one naming the output and the segments.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

from controller.storage.errors import StitchError
from controller.storage.stitch import StitchResult

log = logging.getLogger(__name__)

# The directory holding the ``controller`` package, for a child that reads no PYTHONPATH.
CODE_ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SandboxLimits:
    """What one stitching child may use."""

    address_space: int = 1536 * 1024**2  # PyAV and FFmpeg map about 600 MB to start
    cpu_s: int = 600
    file_size: int = 32 * 1024**3
    open_files: int = 256
    timeout_s: float = 900.0
    no_network: bool = True


@functools.cache
def _unshare_works() -> bool:
    """Whether ``unshare --net`` can make a network namespace here (probed once)."""
    tool = shutil.which("unshare")
    if tool is None:
        return False
    try:
        done = subprocess.run(
            [tool, "--net", "--", "true"], capture_output=True, timeout=5, check=False, env={}
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def stitch_sandboxed(
    segments: list[pathlib.Path],
    out: pathlib.Path,
    starts: list[float] | None = None,
    limits: SandboxLimits | None = None,
) -> StitchResult:
    """``stitch()`` in a sandboxed child process; raises StitchError on any failure."""
    names = ", ".join(p.name for p in segments[:5]) + (" …" if len(segments) > 5 else "")
    ok = run_child(
        "controller.storage.stitch_child",
        {"segments": [str(p) for p in segments], "out": str(out), "starts": starts},
        out,
        f"stitching {names}",
        limits or SandboxLimits(),
    )
    return StitchResult(
        pathlib.Path(ok["path"]),
        ok["duration_s"],
        ok["frames"],
        ok["codec"],
        tuple(str(x) for x in ok.get("skipped", ())),
    )


def run_child(
    module: str, job: dict[str, Any], out: pathlib.Path, doing: str, limits: SandboxLimits
) -> dict[str, Any]:
    """Run ``module``'s ``main()`` in a sandboxed child on ``job`` (it writes ``out``);
    the ``ok`` object it answers, or StitchError naming ``doing`` and why."""
    job = {
        **job,
        "limits": {k: v for k, v in asdict(limits).items() if k not in ("timeout_s", "no_network")},
    }
    code = (
        f"import sys; sys.path.insert(0, sys.argv[1]); from {module} import main; sys.exit(main())"
    )
    argv = [sys.executable, "-I", "-c", code, str(CODE_ROOT)]
    if limits.no_network and _unshare_works():
        argv = [shutil.which("unshare") or "unshare", "--net", "--", *argv]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={},
        close_fds=True,
        start_new_session=True,
        cwd="/",
    )
    try:
        stdout, stderr = proc.communicate(json.dumps(job).encode(), timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out.with_name(out.name + ".part").unlink(missing_ok=True)
        raise StitchError(
            f"{out}: {doing} took over {limits.timeout_s:g} s; the process was killed"
        ) from None
    except BaseException:
        _kill_group(proc)
        raise
    _kill_group(proc)  # anything it left behind in its session
    try:
        answer = json.loads(stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        answer = {}
    if "ok" in answer:
        ok: dict[str, Any] = answer["ok"]
        return ok
    out.with_name(out.name + ".part").unlink(missing_ok=True)
    if "error" in answer:
        raise StitchError(str(answer["error"]))
    how = (
        f"was killed by {signal.Signals(-proc.returncode).name}"
        if proc.returncode < 0
        else f"exited with {proc.returncode}"
    )
    tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
    raise StitchError(f"{out}: {doing}: the process {how}: {' | '.join(tail)}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
