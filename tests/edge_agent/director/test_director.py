"""The director end to end: three synthetic cameras at 5 fps in, cuts out."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.director import Cut, Director, Shot
from edge_agent.director.activity import BoardActivity, Region, TeacherSettings
from edge_agent.director.synthetic import SyntheticClassroom

W, H = 320, 180
DT = 0.2


class Lesson:
    """Three cameras of one synthetic classroom feeding a director, tick by tick."""

    def __init__(self) -> None:
        self.room = SyntheticClassroom(W, H, seed=5, noise=1.5)
        self.cuts: list[Cut] = []
        self.director = Director(
            teacher=TeacherSettings(board=Region(0.25, 0.0, 0.75, 1.0)), on_cut=self.cuts.append
        )
        self.t, self.n, self.strokes = 0.0, 0, 0

    def run(
        self,
        seconds: float,
        *,
        teacher: float | None = None,
        walk: float = 0.0,
        write: bool = False,
        rise: float = 0.0,
    ) -> None:
        for _ in range(round(seconds / DT)):
            self.strokes += write
            self.director.feed("teacher", self.room.teacher(teacher, arm=0.5 * write), self.t)
            self.director.feed("student", self.room.students(rise=rise, phase=self.n), self.t)
            self.director.feed("board", self.room.board(self.strokes, hand=write), self.t)
            self.director.tick(self.t)
            if teacher is not None:
                teacher += walk * DT
            self.t = round(self.t + DT, 6)
            self.n += 1

    def shot(self) -> Shot | None:
        """The shot on air now (a call, so that mypy does not narrow it between runs)."""
        return self.director.shot


def test_a_lesson_walk_stand_write_and_a_student_question() -> None:
    lesson = Lesson()
    lesson.run(2.0)  # an empty room
    assert lesson.shot() == "teacher_wide"
    lesson.run(6.0, teacher=0.05, walk=0.15)  # the teacher walks in, across the room
    assert lesson.shot() == "teacher_wide"
    lesson.run(8.0, teacher=0.5)  # stops at the board and talks
    assert lesson.shot() == "teacher_medium"
    medium = lesson.cuts[-1].t
    assert 8.0 + 1.5 < medium < 8.0 + 3.5
    lesson.run(14.0, teacher=0.5, write=True)  # writes on the board
    assert lesson.shot() == "board"
    board = lesson.cuts[-1]
    assert (board.source_role, board.preset) == ("board", "board")
    assert 16.0 + 3.0 <= board.t <= 16.0 + 4.5  # about 3 s of writing, never under 2
    lesson.run(6.0, teacher=0.5, write=True, rise=1.0)  # a student stands to answer
    student = lesson.cuts[-1]
    assert student.shot == "student" and student.preset == "students"
    assert 30.0 + 1.0 <= student.t <= 30.0 + 2.5
    lesson.run(8.0, teacher=0.5, write=True)  # sits down; the teacher writes on
    assert [c.shot for c in lesson.cuts] == [
        "teacher_wide",
        "teacher_medium",
        "board",
        "student",
        "board",
    ]
    assert lesson.cuts[-1].t - student.t >= 4.0
    stats = lesson.director.stats
    assert stats.frames == {"teacher": 220, "student": 220, "board": 220}
    assert stats.ticks == 220 and stats.cuts == 5 and stats.cuts_by_shot["board"] == 2
    assert stats.busy_s > 0


def test_frames_beyond_the_rate_are_dropped_and_wants_says_so() -> None:
    director = Director(["board"], fps=5.0)
    frame = np.full((H, W), 200, dtype=np.uint8)
    used = [director.feed("board", frame, round(i * 0.04, 6)) for i in range(250)]  # 25 fps
    # 5 fps: 0.0 and then 0.16 (close enough to 0.2), 0.36, … 9.96
    assert sum(used) == 51 and director.stats.dropped["board"] == 199
    assert used[:6] == [True, False, False, False, True, False]
    assert director.stats.frames["board"] == 51
    assert not director.wants("board", 10.1)  # the next is due at 10.2 …
    assert director.wants("board", 10.16) and director.wants("board", 10.2)  # … give or take
    assert director.feed("board", frame, 60.0)  # after a stall the schedule starts afresh
    assert director.feed("board", frame, 60.2) and not director.feed("board", frame, 60.3)


def test_a_camera_that_stops_counts_as_showing_nothing() -> None:
    director = Director(["board"], stale_s=2.0)
    room = SyntheticClassroom(W, H, seed=6)
    t = 0.0
    for n in range(15):
        director.feed("board", room.board(n), t)
        t += DT
    latest = director.latest("board")
    assert isinstance(latest, BoardActivity) and latest.writing
    assert director.observation(t).board_writing
    assert not director.observation(t + 2.5).board_writing  # the camera went quiet
    assert not director.observation(t).teacher_present  # no teacher camera at all


def test_unknown_roles_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown roles"):
        Director(["teacher", "ceiling"])
    director = Director()
    with pytest.raises(ValueError, match="no camera with role 'panel'"):
        director.feed("panel", np.zeros((H, W), dtype=np.uint8), 0.0)
    with pytest.raises(ValueError, match="fps"):
        Director(fps=0)


def test_panel_content_gets_its_own_detector_and_shot() -> None:
    cuts: list[Cut] = []
    director = Director(["teacher", "panel"], on_cut=cuts.append)
    room = SyntheticClassroom(W, H, seed=7)
    t = 0.0
    for n in range(40):
        director.feed("teacher", room.teacher(0.5), t)
        director.feed("panel", room.board(n // 2 * 2), t)  # annotation on the panel
        director.tick(t)
        t += DT
    assert [c.shot for c in cuts][-1] == "panel"
    assert cuts[-1].source_role == "panel" and cuts[-1].preset is None
