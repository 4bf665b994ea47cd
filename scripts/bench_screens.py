"""CPU of the room screens' render thread on Xvfb: a receiving panel and a lead mid-screen.

python scripts/bench_screens.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

from edge_agent.devices.synthetic import SyntheticCamera
from edge_agent.profile import Display
from edge_agent.room.screen_probe import probe
from edge_agent.room.screens import RoomScreens
from protocols.messages import FloorState, JoinLesson, Subscription

X_NUMBER = 87


def video(room: str, track: str, role: str, w: int, h: int) -> Subscription:
    """A 30 fps video subscription."""
    return Subscription(
        source_classroom=room, track=track, kind="video", width=w, height=h, fps=30, role=role
    )


def measure(
    name: str, display: Display, join: JoinLesson, sizes: dict[str, tuple[int, int]], seconds: float
) -> None:
    """Feed every source at 30 fps for ``seconds`` and print the render thread's CPU."""
    frames = {}
    for key, (w, h) in sizes.items():
        cam = SyntheticCamera(w, h, 30, key)
        frames[key] = [cam.frame(i, 1_700_000_000_000 + i) for i in range(30)]
    screens = RoomScreens([display], join.subscribe[0].source_classroom)
    screens.start()
    try:
        screens.lesson(join, {})
        start = time.monotonic()
        proc0 = time.process_time()
        cpu0 = float(screens.stats().get("render_cpu_s", 0.0))  # type: ignore[arg-type]
        i = 0
        while time.monotonic() - start < seconds:
            for key in sizes:
                screens.show(key, frames[key][i % 30])
            i += 1
            time.sleep(max(0.0, start + i / 30 - time.monotonic()))
        wall = time.monotonic() - start
        proc = time.process_time() - proc0
        stats = screens.stats()
        cpu = float(stats["render_cpu_s"]) - cpu0  # type: ignore[arg-type]
        decoded = probe(screens)[display.name]
    finally:
        screens.stop()
    drawn = stats["drawn"][display.name]  # type: ignore[index]
    print(
        f"{name}: render thread {100 * cpu / wall:.1f}% of one core "
        f"(whole process incl. feeder {100 * proc / wall:.1f}%), "
        f"{drawn / wall:.1f} redraws/s, "
        f"codes read {sum(v is not None for v in decoded.values())}/{len(decoded)}"
    )


def main() -> None:
    """Run both cases on a private Xvfb."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    xvfb = subprocess.Popen(
        ["Xvfb", f":{X_NUMBER}", "-screen", "0", "1280x720x24", "-nolisten", "tcp"]
    )
    try:
        while not os.path.exists(f"/tmp/.X11-unix/X{X_NUMBER}"):
            time.sleep(0.05)
        x = f":{X_NUMBER}"
        receiving = JoinLesson(
            lesson_id="B",
            role="receiver",
            publish=[],
            start_at=0,
            end_at=1,
            subscribe=[
                video("city", "teacher", "teacher", 1280, 720),
                video("city", "pc", "content", 1280, 720),
            ],
        )
        measure(
            "receiving panel 1280x720, 2 x 720p30",
            Display(name="panel", display=x, width=1280, height=720),
            receiving,
            {"city-teacher": (1280, 720), "city-pc": (1280, 720)},
            args.seconds,
        )
        lead = JoinLesson(
            lesson_id="B",
            role="lead",
            publish=[],
            start_at=0,
            end_at=1,
            subscribe=[video(f"v{i}", "students", "student", 640, 360) for i in range(3)],
            floor=FloorState(lesson_id="B", seq=1, speaking="v1"),
        )
        measure(
            "lead mid-screen 1280x720, 3 x 360p30",
            Display(name="mid", kind="mid_screen", display=x, width=1280, height=720),
            lead,
            {f"v{i}-students": (640, 360) for i in range(3)},
            args.seconds,
        )
    finally:
        xvfb.terminate()
        xvfb.wait(5)


if __name__ == "__main__":
    main()
