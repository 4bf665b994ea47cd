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

What the collection frees goes back to glibc's allocator, which keeps it for reuse rather
than returning it to the system: bench-soak's agents still grew about 80 % over a school
day though Python's own memory did not grow. After the collection the agent therefore
asks glibc to give its free pages back (``malloc_trim``), between lessons only, since the
call walks every arena under its lock. Elsewhere than glibc it is skipped.

Trimming alone did not hold a school day flat: glibc gives each thread that allocates at
once its own arena (up to eight per core), and the decoder, encoder and sound threads
leave free but fragmented pages spread over a dozen of them, which ``malloc_trim`` returns
only in part. The daemon therefore caps the arenas at two before it starts any thread
(:func:`limit_arenas`), unless ``MALLOC_ARENA_MAX`` says otherwise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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
    between lessons nobody hears or sees it), then the freed heap handed back to the
    system; returns how many objects the collection freed."""
    started = time.perf_counter()
    freed = gc.collect()
    collected = time.perf_counter()
    before = resident_bytes()
    trimmed = trim_heap()
    log.info(
        "between lessons: the garbage collector freed %d objects in %.0f ms; "
        "%s (resident %.0f → %.0f MB, %.0f ms)",
        freed,
        (collected - started) * 1000.0,
        "the allocator gave free memory back" if trimmed else "nothing to give back",
        before / 1e6,
        resident_bytes() / 1e6,
        (time.perf_counter() - collected) * 1000.0,
    )
    return freed


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return libc


_LIBC = _glibc()


M_ARENA_MAX = -8  # glibc's mallopt parameter number, from malloc.h
ARENA_MAX = 2


def limit_arenas(arenas: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas (``mallopt(M_ARENA_MAX)``); call before threads start.
    True when set; False when ``MALLOC_ARENA_MAX`` already decides, or this is not glibc."""
    if _LIBC is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = _LIBC.mallopt
    except AttributeError:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))


def trim_heap() -> bool:
    """glibc's ``malloc_trim(0)``: free pages of every arena back to the system. True when
    memory was released; False when there was none, or this is not glibc."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))


def resident_bytes() -> int:
    """This process's resident memory (0 when /proc is not there)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


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
