"""The clip-cutting child process: one job as JSON on stdin, the answer on stdout.

Started by :func:`controller.library.clip.cut_sandboxed`; it lowers its resource limits
before it imports PyAV or opens the recording, as the stitching child does."""

from __future__ import annotations

import json
import pathlib
import resource
import sys

from controller.storage.stitch_child import _limit


def main() -> int:
    """Run one job; exit 0 with ``{"ok": ...}`` or 1 with ``{"error": ...}``."""
    job = json.loads(sys.stdin.read())
    limits = job["limits"]
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_AS, int(limits["address_space"]))
    _limit(resource.RLIMIT_CPU, int(limits["cpu_s"]))
    _limit(resource.RLIMIT_FSIZE, int(limits["file_size"]))
    _limit(resource.RLIMIT_NOFILE, int(limits["open_files"]))
    from controller.library.clip import ClipError, cut

    try:
        result = cut(
            pathlib.Path(job["source"]),
            pathlib.Path(job["out"]),
            float(job["start_s"]),
            float(job["end_s"]),
        )
    except (ClipError, OSError, MemoryError) as err:
        print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
        return 1
    ok = {
        "path": str(result.path),
        "start_s": result.start_s,
        "end_s": result.end_s,
        "duration_s": result.duration_s,
        "codec": result.codec,
        "frames": result.frames,
    }
    print(json.dumps({"ok": ok}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
