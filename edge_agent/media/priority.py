"""Sound threads ahead of the rest: a room hears gaps when its playout or microphone
thread waits behind video work.

A thread asks the kernel for a better nice value for itself (Linux schedules threads
one by one). Without the right (``CAP_SYS_NICE``, or systemd's ``LimitNICE=``) the
request is refused and the thread carries on at normal priority: that is logged once,
never fatal. The agent also shortens Python's switch interval a little, so a sound thread
waiting for the interpreter lock gets it sooner; and after start-up it freezes what it
has made so far out of the garbage collector's reach, so the collector's pauses (which
stop every thread) stay short: 50–90 ms gen-2 pauses were measured before.

With collections that rare, a finished lesson's objects (peer connection, sources and
their x264 encoders with their threads, recorder) sit in reference cycles until a gen-2
pass that may be hours away: bench-soak saw the lead agent gain about 10 threads and
90 MB a lesson. So the lesson lifecycle runs one full collection after each lesson, once
no lesson is live (:func:`collect_between_lessons`).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time

log = logging.getLogger(__name__)

SOUND_NICE = -10
SWITCH_INTERVAL_S = 0.004
_refused = threading.Event()


def favour_this_thread(nice: int = SOUND_NICE) -> bool:
    """Give the calling thread nice ``nice``; False (logged once) when not allowed."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (PermissionError, OSError) as err:
        if not _refused.is_set():
            _refused.set()
            log.info(
                "sound threads stay at normal priority (%s); allow it with LimitNICE=%d "
                "in the agent's unit",
                err,
                nice,
            )
        return False
    return True


def favour_sound_threads() -> None:
    """Process-wide: hand the interpreter lock over a little more often (sound threads
    wait less; 2 ms cost more in switching than it saved here)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


GC_THRESHOLDS = (50_000, 20, 100)


def settle_garbage_collector() -> PauseWatch:
    """After start-up: the objects made so far (modules, models, codecs) are kept out of
    every later collection, and collections run less often, so the pauses in which every
    thread stops — the speakers' and microphone's included — stay short and rare."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    watch = PauseWatch()
    gc.callbacks.append(watch)
    return watch


def collect_between_lessons() -> int:
    """One full collection while no lesson is live (its pause stops every thread, and
    between lessons nobody hears or sees it); returns how many objects it freed."""
    started = time.perf_counter()
    freed = gc.collect()
    log.info(
        "between lessons: the garbage collector freed %d objects in %.0f ms",
        freed,
        (time.perf_counter() - started) * 1000.0,
    )
    return freed


class PauseWatch:
    """Measures the garbage collector's pauses (every thread stops while it runs)."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.longest_ms = 0.0
        self.count = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self.started = now
        elif self.started is not None:
            ms = (now - self.started) * 1000.0
            self.count += 1
            if ms > self.longest_ms:
                self.longest_ms = ms
                if ms > 20:
                    log.info(
                        "garbage collection (generation %s) paused the agent for %.0f ms",
                        info.get("generation"),
                        ms,
                    )
