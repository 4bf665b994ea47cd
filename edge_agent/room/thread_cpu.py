"""CPU time of the room's own threads, read from the kernel's per-thread accounts.

The sound and render threads are Python threads with known OS ids; PulseAudio's client
library plays from a thread of its own per stream (``threaded-ml``): the speakers' stream
says which is its own (the microphone's, which is not the room's, is left out).
"""

from __future__ import annotations

from collections.abc import Iterable

import psutil


class ThreadCpu:
    """Sums user+system seconds of chosen threads of this process."""

    def __init__(self) -> None:
        self._proc = psutil.Process()

    def seconds(self, threads: dict[str, int], pulse: Iterable[int] = ()) -> dict[str, float]:
        """CPU seconds: each named thread (name → OS id), the speakers' PulseAudio
        threads (``pulse``), their sum (``room``) and the whole process."""
        ids = {tid: name for name, tid in threads.items()}
        for tid in pulse:
            ids.setdefault(tid, "pulse")
        out: dict[str, float] = {}
        for t in self._proc.threads():
            name = ids.get(t.id)
            if name is not None:
                out[name] = round(out.get(name, 0.0) + t.user_time + t.system_time, 3)
        out["room"] = round(sum(out.values()), 3)
        times = self._proc.cpu_times()
        out["process"] = round(times.user + times.system, 3)
        return out
