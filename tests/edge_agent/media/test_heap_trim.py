"""Between lessons the agent hands freed heap back to the system (glibc keeps it otherwise)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# In a process of its own, so that the test's own heap is not part of what it measures:
# 150 MB of 1 kB blocks, every 50th kept, so glibc cannot shrink its heap from the top by
# itself; the rest freed. Resident memory after freeing, then after trimming.
_SCRIPT = textwrap.dedent(
    """
    import json
    from edge_agent.media.priority import resident_bytes, trim_heap
    blocks = [bytes(1000) + bytes([i % 251]) for i in range(150_000)]
    kept = blocks[::50]
    del blocks
    freed = resident_bytes()
    released = trim_heap()
    print(json.dumps({"freed": freed, "trimmed": resident_bytes(), "released": released}))
    """
)


def test_trimming_gives_freed_heap_back() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    got = json.loads(out.stdout)
    assert got["released"] is True
    # What the freed blocks held (about 145 MB) leaves the process.
    assert got["freed"] - got["trimmed"] > 100e6, got
