"""The clip-cutting child process: one job as JSON on stdin, the answer on stdout.

Started by :func:`controller.library.clip.cut_sandboxed`; it lowers its resource limits
before it imports PyAV or opens the recording, as the stitching child does."""

from __future__ import annotations

import json
import pathlib
import sys

from controller.storage.stitch_child import apply_limits


def main() -> int:
    """Run one job; exit 0 with ``{"ok": ...}`` or 1 with ``{"error": ...}``."""
    job = json.loads(sys.stdin.read())
    apply_limits(job["limits"])
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
