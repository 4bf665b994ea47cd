"""bench-director: what the director (导播) costs the edge agent.

Three cameras (teacher, students, board) at 5 fps. Each camera's pictures are 1280x720
grayscale, the Y plane that a decoded yuv420p frame gives without any conversion, with
moving content: the teacher walks and stops, the class fidgets and a student stands up,
strokes accumulate on the board. A ring of frames per camera is drawn before timing, so
drawing costs nothing in the figure.

Every 1/5 s, paced in real time, each camera's frame is scaled to 320x180 with
``cv2.resize(INTER_AREA)`` and fed to :class:`~edge_agent.director.Director`, then the
director ticks. The figure is the process CPU time (``time.process_time``: user and system
time of every thread, OpenCV's workers included) spent in that work, in percent of one
core over the wall-clock time of the run. The target is under 10 %.

    .venv/bin/python scripts/bench_director.py [--json] [--seconds S] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import cv2  # noqa: E402

from edge_agent.director import Director  # noqa: E402
from edge_agent.director.activity import Gray, Region, TeacherSettings, u8  # noqa: E402
from edge_agent.director.synthetic import SyntheticClassroom  # noqa: E402

FPS = 5
SOURCE = (1280, 720)
ANALYSIS = (320, 180)
RING = 50  # frames per camera: 10 s of content at 5 fps
ROLES = ("teacher", "student", "board")


def camera_rings(ring: int = RING) -> dict[str, list[Gray]]:
    """``ring`` frames of 1280x720 content per camera role (drawn once, before timing)."""
    room = SyntheticClassroom(*SOURCE, seed=11, noise=2.0)
    half = ring // 2
    teacher = [
        room.teacher(0.2 + 0.6 * min(i, half) / half, arm=0.5 * (i > half) * (i % 3))
        for i in range(ring)
    ]
    students = [
        room.students(rise=min(1.0, max(0.0, (i - half) / 4)) if i < ring - 5 else 0.0, phase=i)
        for i in range(ring)
    ]
    board = [room.board(i, hand=True) for i in range(ring)]
    return {"teacher": teacher, "student": students, "board": board}


def director_cpu_pct(seconds: float = 10.0, threads: int | None = None) -> dict[str, float]:
    """Run the director on three 5 fps cameras for ``seconds`` of real time.

    ``threads`` sets OpenCV's thread count (None leaves OpenCV's default). Returns the
    figures; ``director_cpu_pct`` is the CPU of scaling plus detection plus the rules as a
    percentage of one core.
    """
    if threads is not None:
        cv2.setNumThreads(threads)
    rings = camera_rings()
    director = Director(ROLES, fps=FPS, teacher=TeacherSettings(board=Region(0.25, 0.0, 0.75, 1.0)))
    period = 1.0 / FPS
    resize_cpu = detect_cpu = 0.0
    ticks = 0
    process_start = time.process_time()
    start = time.monotonic()
    deadline = start + seconds
    next_tick = start
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if now < next_tick:
            time.sleep(next_tick - now)
            continue
        t = now - start
        frame_index = ticks % RING
        for role in ROLES:
            c0 = time.process_time()
            small = u8(cv2.resize(rings[role][frame_index], ANALYSIS, interpolation=cv2.INTER_AREA))
            c1 = time.process_time()
            director.feed(role, small, t)
            resize_cpu += c1 - c0
            detect_cpu += time.process_time() - c1
        c0 = time.process_time()
        director.tick(t)
        detect_cpu += time.process_time() - c0
        ticks += 1
        next_tick += period
        if next_tick < time.monotonic() - period:  # fell behind: do not try to catch up
            next_tick = time.monotonic()
    wall = time.monotonic() - start
    process_cpu = time.process_time() - process_start  # the loop, pacing and all
    frames = sum(director.stats.frames.values())
    cpu = resize_cpu + detect_cpu
    return {
        "director_cpu_pct": round(100 * cpu / wall, 2),
        "resize_cpu_pct": round(100 * resize_cpu / wall, 2),
        "detect_cpu_pct": round(100 * detect_cpu / wall, 2),
        "process_cpu_pct": round(100 * process_cpu / wall, 2),
        "cameras": len(ROLES),
        "fps": FPS,
        "seconds": round(wall, 2),
        "ticks": ticks,
        "frames": frames,
        "cpu_ms_per_frame": round(1000 * cpu / max(frames, 1), 3),
        "cuts": director.stats.cuts,
        "cv2_threads": cv2.getNumThreads(),
    }


def main() -> None:
    """Print the director's cost; with --json also one JSON object on the last line."""
    parser = argparse.ArgumentParser(description="the director's CPU cost, 3 cameras at 5 fps")
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=None, help="OpenCV threads")
    args = parser.parse_args()
    figures = director_cpu_pct(args.seconds, args.threads)
    print(
        f"director: {figures['director_cpu_pct']}% of one core for {figures['cameras']} "
        f"cameras at {figures['fps']} fps ({SOURCE[0]}x{SOURCE[1]} scaled to "
        f"{ANALYSIS[0]}x{ANALYSIS[1]}: {figures['resize_cpu_pct']}%, detection and rules: "
        f"{figures['detect_cpu_pct']}%), {figures['cpu_ms_per_frame']} ms per frame; "
        f"the whole timed loop {figures['process_cpu_pct']}%; "
        f"{figures['cuts']} cuts in {figures['seconds']} s, "
        f"OpenCV threads {figures['cv2_threads']}"
    )
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
