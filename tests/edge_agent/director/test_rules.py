"""The director's rules: which shot is on air, when it changes, and that it never flickers."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest

from edge_agent.devices.visca import PRESET_ROLES
from edge_agent.director.rules import (
    DEFAULT_TARGETS,
    SHOTS,
    Cut,
    Observation,
    Rules,
    RuleSettings,
    Shot,
    Target,
)
from edge_agent.profile import ROLES

DT = 0.2
STILL = Observation(teacher_present=True)
WALKING = Observation(teacher_present=True, teacher_moving=True)
WRITING = Observation(teacher_present=True, teacher_at_board=True, board_writing=True)


class Clock:
    """Feeds a Rules one observation every DT seconds and keeps the cuts."""

    def __init__(self, settings: RuleSettings | None = None) -> None:
        self.rules = Rules(settings)
        self.t = 0.0
        self.cuts: list[Cut] = []

    def shot(self) -> Shot | None:
        """The shot on air now (a call, so that mypy does not narrow it between runs)."""
        return self.rules.shot

    def run(self, obs: Observation, seconds: float) -> list[Cut]:
        """Hold ``obs`` for ``seconds``; returns the cuts made meanwhile."""
        made = []
        for _ in range(round(seconds / DT)):
            cut = self.rules.update(obs, self.t)
            if cut is not None:
                made.append(cut)
            self.t = round(self.t + DT, 6)
        self.cuts += made
        return made


def test_every_shot_has_a_source_and_a_known_preset() -> None:
    assert set(DEFAULT_TARGETS) == set(SHOTS)
    camera_roles = set(ROLES["camera"])
    for shot, target in DEFAULT_TARGETS.items():
        assert target.preset is None or target.preset in PRESET_ROLES, shot
        assert target.source_role in camera_roles | {"panel"}, shot
    with pytest.raises(ValueError, match="targets lack shots"):
        Rules(targets={"board": Target("board", "board")})


def test_starts_wide_and_the_cut_carries_source_and_preset() -> None:
    clock = Clock()
    (cut,) = clock.run(WALKING, 1.0)
    assert (cut.shot, cut.source_role, cut.preset, cut.t) == ("teacher_wide", "teacher", "wide", 0)
    assert "walking" in cut.reason
    assert clock.shot() == "teacher_wide"


def test_walking_is_wide_standing_still_is_medium() -> None:
    clock = Clock()
    clock.run(WALKING, 6.0)
    (cut,) = clock.run(STILL, 3.0)  # still for medium_after_s (1.5 s), dwell long over
    assert cut.shot == "teacher_medium" and cut.preset == "teacher"
    assert 1.5 <= cut.t - 6.0 <= 1.5 + DT
    medium_at = cut.t
    (cut,) = clock.run(WALKING, 5.0)  # walks again at 9.0: wide once the dwell is over
    assert cut.shot == "teacher_wide" and cut.t == pytest.approx(medium_at + 4.0)
    assert clock.run(Observation(), 10.0) == []  # out of sight: stays wide


def test_board_after_three_seconds_of_writing_not_before_two() -> None:
    clock = Clock()
    clock.run(STILL, 10.0)
    start = clock.t
    assert clock.run(WRITING, 2.0) == []  # 2 s of writing: still the teacher
    (cut,) = clock.run(WRITING, 2.0)
    assert cut.shot == "board" and cut.source_role == "board" and cut.preset == "board"
    assert 2.0 < cut.t - start <= 3.2
    assert clock.run(WRITING, 60.0) == []  # the board stays while the writing goes on


def test_board_ends_when_the_writing_stops() -> None:
    clock = Clock()
    clock.run(STILL, 10.0)
    clock.run(WRITING, 10.0)
    assert clock.shot() == "board"
    stop = clock.t
    assert clock.run(STILL, 4.0) == []  # short pauses keep the board up
    (cut,) = clock.run(STILL, 3.0)
    assert cut.shot == "teacher_medium" and cut.t - stop == pytest.approx(5.0)


def test_board_timeout_goes_wide_and_cools_down_before_the_board_again() -> None:
    clock = Clock()
    clock.run(STILL, 10.0)
    clock.run(WRITING, 3.2)
    board_at = clock.cuts[-1].t
    assert clock.cuts[-1].shot == "board"
    cuts = clock.run(WRITING, 150.0)
    (cut,) = cuts
    assert cut.shot == "teacher_wide" and cut.t - board_at == pytest.approx(150.0)
    assert "on the board" in cut.reason
    # the writing goes on: no board during the 30 s cool-down (medium after the dwell)
    cuts = clock.run(WRITING, 29.0)
    assert [c.shot for c in cuts] == ["teacher_medium"]
    (cut,) = clock.run(WRITING, 2.0)
    assert cut.shot == "board" and cut.t - board_at == pytest.approx(180.0)


def test_board_timeout_is_configurable() -> None:
    clock = Clock(RuleSettings(board_max_s=20.0))
    clock.run(STILL, 10.0)
    clock.run(WRITING, 30.0)
    shots = [c.shot for c in clock.cuts]
    assert shots == ["teacher_wide", "teacher_medium", "board", "teacher_wide", "teacher_medium"]
    assert clock.cuts[3].t - clock.cuts[2].t == pytest.approx(20.0)


def test_student_standing_after_confirmation_and_back_when_seated() -> None:
    clock = Clock()
    clock.run(STILL, 10.0)
    standing = replace(STILL, student_standing=True)
    assert clock.run(standing, 0.8) == []  # not yet confirmed
    (cut,) = clock.run(standing, 10.0)
    assert cut.shot == "student" and cut.source_role == "student" and cut.preset == "students"
    assert cut.t == pytest.approx(11.0)
    sat = clock.t
    (cut,) = clock.run(STILL, 3.0)
    assert cut.shot == "teacher_medium" and cut.t - sat == pytest.approx(1.0)


def test_a_student_bobbing_up_for_less_than_the_confirmation_is_ignored() -> None:
    clock = Clock()
    clock.run(STILL, 10.0)
    for _ in range(20):
        clock.run(replace(STILL, student_standing=True), 0.6)
        clock.run(STILL, 0.6)
    assert [c.shot for c in clock.cuts] == ["teacher_wide", "teacher_medium"]


def test_student_beats_the_board_and_the_board_returns_after() -> None:
    clock = Clock()
    clock.run(STILL, 10.0)
    clock.run(WRITING, 6.0)
    assert clock.shot() == "board"
    clock.run(replace(WRITING, student_standing=True), 8.0)
    assert clock.shot() == "student"
    clock.run(WRITING, 6.0)
    assert [c.shot for c in clock.cuts][-3:] == ["board", "student", "board"]


def test_minimum_dwell_holds_every_shot_four_seconds_under_flicker() -> None:
    # No confirmation delays at all, inputs changing at random every tick: only the dwell
    # stands between the inputs and the programme.
    settings = RuleSettings(medium_after_s=0.0, board_after_s=0.0, student_confirm_s=0.0)
    settings = replace(settings, board_release_s=0.0, student_release_s=0.0)
    clock = Clock(settings)
    rng = random.Random(7)
    for _ in range(1500):  # 300 s
        obs = Observation(
            teacher_present=rng.random() < 0.8,
            teacher_moving=rng.random() < 0.5,
            board_writing=rng.random() < 0.3,
            student_standing=rng.random() < 0.2,
        )
        clock.run(obs, DT)
    times = [c.t for c in clock.cuts]
    assert len(times) > 40  # the input really did ask for cuts all the time
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 4.0 - 1e-9
    assert len({c.shot for c in clock.cuts}) >= 4


def test_alternating_walk_and_stand_never_cuts_faster_than_the_dwell() -> None:
    clock = Clock(RuleSettings(medium_after_s=0.0))
    for _ in range(100):
        clock.run(WALKING, 0.4)
        clock.run(STILL, 0.4)
    times = [c.t for c in clock.cuts]
    assert len(times) >= 15
    assert min(b - a for a, b in itertools.pairwise(times)) >= 4.0


def test_writing_can_require_the_teacher_at_the_board() -> None:
    clock = Clock(RuleSettings(require_at_board=True))
    clock.run(STILL, 10.0)
    clock.run(replace(WRITING, teacher_at_board=False), 10.0)  # a slide show, not the teacher
    assert clock.shot() == "teacher_medium"
    clock.run(WRITING, 4.0)
    assert clock.shot() == "board"


def test_panel_writing_is_the_panel_shot() -> None:
    clock = Clock()
    clock.run(STILL, 10.0)
    (cut,) = clock.run(Observation(teacher_present=True, panel_writing=True), 4.0)
    assert cut.shot == "panel" and cut.source_role == "panel" and cut.preset is None


def test_time_running_backwards_is_not_a_cut_in_the_past() -> None:
    rules = Rules()
    assert rules.update(WALKING, 100.0) is not None
    assert rules.update(STILL, 50.0) is None
    assert rules.on_air_for(100.0) == 0.0
