"""Reading a fault case's outcome from the catalogue and from storage itself."""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Callable
from typing import Any

from benchlib.rig import LessonRig

REQUIRED = 0.995
# Lines the fault suite prints at the end of its run (tests/faults/conftest.py).
COVERAGE_LINES: list[str] = []

Reader = Callable[[str], bytes]


def local_reader(rig: LessonRig) -> Reader:
    """Objects of the controller's local storage."""
    root = rig.controller_state / "storage"
    return lambda key: (root / key).read_bytes()


def check_lesson(
    rig: LessonRig,
    case: str,
    lesson_id: str,
    read: Reader,
    dead_s: dict[str, float] | None = None,
) -> dict[str, float]:
    """Assert coverage ≥ 99.5 % (excluding dead seconds) and every stored checksum.

    Returns the coverage per classroom, and prints it with the suite's summary.
    """
    catalogue: dict[str, Any] = rig.catalogue(lesson_id)
    rooms = {room["classroom"]: room for room in catalogue["classrooms"]}
    assert rooms, f"{case}: no classroom's recording is catalogued"
    out = {}
    for classroom, room in rooms.items():
        cov = room["coverage"]
        own = [t for t in cov["tracks"] if t["direction"] == "send" and t["kind"] == "video"]
        assert own, f"{case}: {classroom} recorded no camera"
        covered = min(t["covered_s"] for t in own)
        dead = (dead_s or {}).get(classroom, 0.0)
        ratio = min(covered / (cov["scheduled_s"] - dead), 1.0)
        gaps = [g for t in own for g in t["gaps"]]
        COVERAGE_LINES.append(
            f"{case:<34} {classroom:<16} coverage {100 * ratio:7.3f}% of "
            f"{cov['scheduled_s'] - dead:6.1f} s live (dead {dead:.2f} s); "
            f"catalogue ratio {100 * cov['ratio']:.3f}%; gaps {gaps}"
        )
        assert ratio >= REQUIRED, f"{case}: {classroom} covers {ratio:.4%}; gaps {gaps}"
        for track in room["tracks"]:
            for seg in track["segments"]:
                assert seg["stored"], f"{case}: {classroom}/{track['track']}/{seg['name']}"
                key = f"lessons/{lesson_id}/{classroom}/{track['track']}/{seg['name']}"
                digest = hashlib.sha256(read(key)).hexdigest()
                assert digest == seg["sha256"], f"{case}: {key} differs from its manifest"
        out[classroom] = ratio
    return out


def lesson_dir(rig: LessonRig, classroom: str, lesson_id: str) -> pathlib.Path:
    """Where an agent keeps a lesson's recording."""
    return rig.root / classroom / "recordings" / lesson_id
