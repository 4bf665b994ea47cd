"""The agent's worker pool has all its threads from the start: work never adds one."""

from __future__ import annotations

import asyncio
import threading
import time

from edge_agent.workers import THREAD_PREFIX, start_worker_pool


def _workers() -> int:
    return sum(t.name.startswith(THREAD_PREFIX) for t in threading.enumerate())


async def test_every_worker_runs_before_any_work_and_none_is_added() -> None:
    loop = asyncio.get_running_loop()
    pool = start_worker_pool(loop, workers=4)
    try:
        assert _workers() == 4
        before = threading.active_count()
        # Bursts wider than the pool, as a lesson's end is (reports, recordings, uploads).
        for _ in range(3):
            await asyncio.gather(*(asyncio.to_thread(time.sleep, 0.02) for _ in range(12)))
        assert threading.active_count() == before
        assert _workers() == 4
    finally:
        pool.shutdown(wait=True)
