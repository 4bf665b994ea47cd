"""The agent's pool of worker threads (``asyncio.to_thread``, ``run_in_executor``), all
started at once.

asyncio's default pool starts its threads one by one as work first overlaps, up to its
bound, so the agent's thread count crept up over its first lessons of the day (bench-soak
counted one or two more after the last lesson than after the first) and a real thread
leak could hide in that drift. The agent makes the pool itself, at the same bound, and
starts every thread before the first lesson: the count is flat from then on, and any
growth is a leak worth looking for.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor

THREAD_PREFIX = "agent-worker"


def pool_size() -> int:
    """asyncio's own bound for its default pool: cores + 4, at most 32."""
    return min(32, (os.cpu_count() or 1) + 4)


def start_worker_pool(
    loop: asyncio.AbstractEventLoop, workers: int | None = None
) -> ThreadPoolExecutor:
    """Make the loop's default pool with every thread running; returns it."""
    size = workers or pool_size()
    pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=THREAD_PREFIX)
    # A pool starts a thread for a task only when none is idle: tasks that all wait for
    # each other make it start every one.
    gate = threading.Barrier(size + 1)
    started = [pool.submit(gate.wait, 10.0) for _ in range(size)]
    gate.wait(10.0)
    for future in started:
        future.result(10.0)
    loop.set_default_executor(pool)
    return pool
