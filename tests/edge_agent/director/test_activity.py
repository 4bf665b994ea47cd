"""The director's detectors on synthetic classroom frames (320x180, 5 fps, sensor noise)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.director.activity import (
    BoardActivity,
    BoardDetector,
    BoardSettings,
    Region,
    StudentActivity,
    StudentDetector,
    TeacherActivity,
    TeacherDetector,
    TeacherSettings,
    to_work_size,
)
from edge_agent.director.synthetic import SyntheticClassroom

W, H = 320, 180
DT = 0.2  # 5 fps
BOARD = Region(0.25, 0.0, 0.75, 1.0)


def test_region_checks_and_contains() -> None:
    r = Region(0.25, 0.0, 0.75, 0.5)
    assert r.contains(0.5, 0.25) and not r.contains(0.8, 0.25) and not r.contains(0.5, 0.6)
    assert r.slices(320, 180) == (slice(0, 90), slice(80, 240))
    with pytest.raises(ValueError, match="left < right"):
        Region(0.5, 0.0, 0.4, 1.0)


def test_frames_are_scaled_to_the_working_width() -> None:
    big = np.zeros((720, 1280), dtype=np.uint8)
    assert to_work_size(big, 160).shape == (90, 160)
    assert to_work_size(big[:90, :160], 160).shape == (90, 160)
    with pytest.raises(ValueError, match="grayscale"):
        to_work_size(np.zeros((90, 160, 3), dtype=np.uint8), 160)


class TeacherScene:
    """A teacher camera fed at 5 fps: an empty room first, so the model knows the room."""

    def __init__(self, seed: int = 1) -> None:
        self.room = SyntheticClassroom(W, H, seed=seed)
        self.det = TeacherDetector(TeacherSettings(board=BOARD))
        self.t = 0.0
        for _ in range(5):
            self.show(None)

    def show(self, x: float | None, arm: float = 0.0) -> TeacherActivity:
        result = self.det.feed(self.room.teacher(x, arm=arm), self.t)
        self.t += DT
        return result


def test_teacher_walking_is_moving_and_followed() -> None:
    scene = TeacherScene()
    assert not scene.show(None).present
    x, seen = 0.05, []
    for _ in range(20):  # 0.15 frame widths per second: an unhurried walk
        seen.append(scene.show(x))
        x += 0.15 * DT
    assert all(r.present for r in seen)
    assert not seen[0].moving  # the speed needs about a second of track
    assert all(r.moving for r in seen[5:])
    assert 0.12 < seen[-1].speed < 0.2
    xs = [r.x for r in seen if r.x is not None]
    assert xs == sorted(xs) and abs(xs[-1] - (x - 0.15 * DT)) < 0.03
    assert not seen[0].at_board and seen[-1].at_board  # walked from the side to the board


def test_teacher_standing_still_is_present_not_moving_even_when_gesturing() -> None:
    scene = TeacherScene()
    x = 0.1
    for _ in range(10):
        scene.show(x)
        x += 0.04
    assert scene.show(x).moving
    still = [scene.show(x, arm=(i % 4) / 3) for i in range(40)]  # 8 s, waving one arm
    assert still[-1].present and not still[-1].moving
    assert not any(r.moving for r in still[6:])  # stopped within ~1 s, then never walking
    assert all(r.present and r.at_board for r in still)
    assert still[-1].x is not None and abs(still[-1].x - x) < 0.03


def test_teacher_off_the_board_region_and_gone() -> None:
    scene = TeacherScene()
    for i in range(10):
        r = scene.show(0.1 + 0.004 * i)
    assert r.present and not r.at_board and not r.moving
    for _ in range(12):  # the teacher leaves; presence is held 2 s, then dropped
        r = scene.show(None)
    assert not r.present and r.x is None


def test_teacher_lights_switching_on_restart_the_background() -> None:
    scene = TeacherScene()
    brighter = np.clip(scene.room.teacher(None).astype(np.int16) + 70, 0, 255).astype(np.uint8)
    for i in range(5):
        r = scene.det.feed(brighter, scene.t + i * DT)
    assert scene.det.resets == 1
    assert not r.present


class StudentScene:
    def __init__(self, seed: int = 2) -> None:
        self.room = SyntheticClassroom(W, H, seed=seed)
        self.det = StudentDetector()
        self.t, self.phase = 0.0, 0

    def show(self, rise: float = 0.0, who: int = 7) -> StudentActivity:
        result = self.det.feed(self.room.students(rise=rise, who=who, phase=self.phase), self.t)
        self.t += DT
        self.phase += 1
        return result


@pytest.mark.parametrize("who", [2, 7, 12])  # back, middle and front row
def test_student_standing_up_and_sitting_down(who: int) -> None:
    scene = StudentScene()
    seated = [scene.show() for _ in range(50)]  # 10 s of fidgeting class
    assert not any(r.standing for r in seated)
    assert max(r.blobs for r in seated) >= 1  # the fidgeting is seen, and is not standing
    rising = [scene.show(rise=(i + 1) / 5, who=who) for i in range(5)]
    assert rising[-1].standing  # up within a second
    assert rising[-1].x is not None and abs(rising[-1].x - (0.12 + (who % 5) * 0.19)) < 0.05
    standing = [scene.show(rise=1.0, who=who) for _ in range(150)]  # 30 s, beyond absorb_s
    assert all(r.standing for r in standing)
    sitting = [scene.show(rise=1 - (i + 1) / 3, who=who) for i in range(3)]
    after = [scene.show() for _ in range(25)]
    assert not sitting[-1].standing or not after[0].standing
    assert not any(r.standing for r in after[1:])


def test_student_whole_room_change_restarts_not_stands() -> None:
    scene = StudentScene()
    for _ in range(10):
        scene.show()
    dark = (scene.room.students() // 3).astype(np.uint8)
    r = scene.det.feed(dark, scene.t)
    assert scene.det.resets == 1 and not r.standing


class BoardScene:
    def __init__(self, settings: BoardSettings | None = None, seed: int = 3) -> None:
        self.room = SyntheticClassroom(W, H, seed=seed)
        self.det = BoardDetector(settings)
        self.t, self.strokes = 0.0, 0

    def show(self, *, write: bool = False, person: float | None = None) -> BoardActivity:
        self.strokes += write
        frame = self.room.board(self.strokes, hand=write, person=person)
        result = self.det.feed(frame, self.t)
        self.t += DT
        return result


def test_board_writing_is_seen_and_ends_when_the_pen_stops() -> None:
    scene = BoardScene()
    blank = [scene.show() for _ in range(25)]  # 5 s of an untouched board
    assert not any(r.writing for r in blank)
    writing = [scene.show(write=True) for _ in range(15)]
    assert writing[2].writing  # a few strokes are enough
    assert all(r.writing for r in writing[3:])
    assert all(not r.big_motion for r in writing)
    stopped = [scene.show() for _ in range(10)]
    assert not any(r.writing for r in stopped[9:])
    assert not stopped[-1].writing and stopped[-1].strokes == 0


def test_board_someone_walking_past_is_not_writing() -> None:
    scene = BoardScene()
    for _ in range(5):
        scene.show()
    passing = [scene.show(person=0.1 + 0.1 * i) for i in range(9)]
    assert any(r.big_motion for r in passing)
    assert not any(r.writing for r in passing)
    after = [scene.show() for _ in range(15)]
    assert not any(r.writing for r in after)


def test_board_writing_pauses_while_someone_passes_then_resumes() -> None:
    scene = BoardScene()
    for _ in range(3):
        scene.show()
    assert [scene.show(write=True) for _ in range(10)][-1].writing
    crossing = [scene.show(write=True, person=0.2 + 0.15 * i) for i in range(4)]
    assert not crossing[-1].writing  # big motion: not counted, however many strokes
    resumed = [scene.show(write=True) for _ in range(10)]
    assert not resumed[0].writing  # quiet_s must pass after the big motion
    assert resumed[-1].writing


def test_board_standing_in_front_becomes_background_after_a_while() -> None:
    scene = BoardScene()
    for _ in range(3):
        scene.show()
    for i in range(4):
        scene.show(person=0.2 + 0.1 * i)  # walks in …
    rest = [scene.show(person=0.5) for _ in range(20)]  # … and stands there for 4 s
    assert scene.det.rebases == 1
    assert not any(r.writing for r in rest)


def test_board_dark_ink_only_counts_darker_marks() -> None:
    scene = BoardScene(BoardSettings(ink="dark"))
    scene.show()
    assert [scene.show(write=True) for _ in range(6)][-1].writing
    light = BoardScene(BoardSettings(ink="light"))
    light.show()
    assert not any(r.writing for r in [light.show(write=True) for _ in range(10)])
