"""Between lessons the agent hands freed heap back to the system (glibc keeps it otherwise)."""

from __future__ import annotations

import json
import os
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


# Eight threads that each allocate at the same time: glibc gives each its own arena unless
# capped. malloc_stats() writes one "Arena N:" block per arena to standard error.
_ARENAS = textwrap.dedent(
    """
    import ctypes, sys, threading
    from edge_agent.media.priority import limit_arenas
    print(limit_arenas() if sys.argv[1] == "capped" else "uncapped", flush=True)
    start = threading.Barrier(8)
    def work():
        start.wait()
        blocks = [bytes(4000) for _ in range(2000)]
        start_done.wait()
        del blocks
    start_done = threading.Barrier(8)
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ctypes.CDLL(None).malloc_stats()
    """
)


def _arenas(mode: str) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", _ARENAS, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    )
    return out.stdout.strip(), out.stderr.count("Arena ")


def test_the_daemon_caps_mallocs_arenas() -> None:
    said, capped = _arenas("capped")
    assert said == "True"
    assert capped <= 2, f"{capped} arenas with the cap of 2"
    # Without the cap the same threads spread over more arenas: the test can fail.
    _, uncapped = _arenas("uncapped")
    assert uncapped > 2, f"only {uncapped} arenas without the cap"
