"""The stitching child process: reads one job as JSON on stdin, remuxes, answers on stdout.

Started by :mod:`controller.storage.sandbox` with an empty environment, its own session
and no inherited descriptors. It lowers its own resource limits before it imports PyAV or
opens a segment, so the demuxers that parse agent-supplied bytes run inside them.
"""

from __future__ import annotations

import json
import pathlib
import resource
import sys


def _limit(which: int, value: int) -> None:
    _soft, hard = resource.getrlimit(which)
    cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(which, (cap, cap))


def apply_limits(limits: dict[str, int]) -> None:
    """Lower this process's limits to a job's (``SandboxLimits``), and no core dumps."""
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_AS, int(limits["address_space"]))
    _limit(resource.RLIMIT_CPU, int(limits["cpu_s"]))
    _limit(resource.RLIMIT_FSIZE, int(limits["file_size"]))
    _limit(resource.RLIMIT_NOFILE, int(limits["open_files"]))


def main() -> int:
    """Run one job; exit 0 with ``{"ok": ...}`` or 1 with ``{"error": ...}`` on stdout."""
    job = json.loads(sys.stdin.read())
    apply_limits(job["limits"])
    from controller.storage.errors import StitchError
    from controller.storage.stitch import stitch

    try:
        result = stitch(
            [pathlib.Path(p) for p in job["segments"]],
            pathlib.Path(job["out"]),
            job["starts"],
        )
    except (StitchError, OSError, MemoryError) as err:
        print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
        return 1
    print(
        json.dumps(
            {
                "ok": {
                    "path": str(result.path),
                    "duration_s": result.duration_s,
                    "frames": result.frames,
                    "codec": result.codec,
                    "skipped": list(result.skipped),
                }
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
