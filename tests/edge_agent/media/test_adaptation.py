"""Congestion control: the relay's estimates shared among encoders by priority."""

from __future__ import annotations

from edge_agent.media.adaptation import RateAdapter, levels_for, rung_name
from protocols.network_profile import NetworkProfile, Rung

PROFILE = NetworkProfile(
    name="county",
    classroom_cap_kbps=10_000,
    ladder=(
        Rung(name="1080p", width=1920, height=1080, kbps=4000),
        Rung(name="720p", width=1280, height=720, kbps=2000),
        Rung(name="360p", width=640, height=360, kbps=600),
    ),
)


def _room() -> RateAdapter:
    adapter = RateAdapter(up_hold_s=4.0, down_hold_s=1.0)
    adapter.add("teacher", "teacher", 4_000_000, PROFILE)
    adapter.add("panel", "content", 4_000_000, PROFILE)
    adapter.add("student", "student", 2_000_000, PROFILE)
    return adapter


def _estimate_all(adapter: RateAdapter, total_bps: int, now: float) -> None:
    """Each stream estimated at an equal share, each sending what its level says."""
    for name, state in adapter.senders.items():
        adapter.estimate(name, total_bps // len(adapter.senders), now, state.current)


def test_levels_are_rungs_and_midpoints_under_the_ceiling() -> None:
    assert levels_for([4000, 2000, 600], 4_000_000) == [
        600_000,
        1_095_000,
        2_000_000,
        2_828_000,
        4_000_000,
    ]
    assert levels_for([4000, 2000, 600], 2_000_000)[-1] == 2_000_000
    assert rung_name(PROFILE, 2_828_000) == "720p" and rung_name(PROFILE, 100_000) == "360p"


def test_student_and_panel_drop_before_the_teacher() -> None:
    adapter = _room()
    _estimate_all(adapter, 7_000_000, 10.0)  # 6.3 Mbps usable of 10 Mbps wanted
    changes = adapter.step(10.0)
    assert "teacher" not in changes  # the lead teacher keeps 1080p
    assert adapter.senders["teacher"].current == 4_000_000
    assert adapter.total() <= 6_300_000
    assert adapter.senders["student"].current < 2_000_000  # the student camera gave way
    assert adapter.senders["panel"].current < 4_000_000  # and so did the panel


def test_a_deep_cut_puts_everyone_on_the_lowest_rung_but_the_teacher_last() -> None:
    adapter = _room()
    _estimate_all(adapter, 2_800_000, 10.0)  # 2.52 Mbps usable
    adapter.step(10.0)
    assert adapter.senders["student"].current == 600_000
    assert adapter.senders["panel"].current == 600_000
    assert adapter.senders["teacher"].current == 1_095_000  # what is left goes to the lead


def test_going_up_waits_and_climbs_one_level_at_a_time() -> None:
    adapter = _room()
    _estimate_all(adapter, 2_500_000, 0.0)
    adapter.step(0.0)
    teacher = adapter.senders["teacher"]
    low = teacher.current
    for t in (1.0, 2.0, 3.0):
        _estimate_all(adapter, 20_000_000, t)
        assert "teacher" not in adapter.step(t)  # not before the hold
    _estimate_all(adapter, 20_000_000, 5.5)
    changes = adapter.step(5.5)
    assert changes["teacher"] == teacher.levels[teacher.levels.index(low) + 1]


def test_no_estimate_changes_nothing_and_stale_ones_expire() -> None:
    adapter = _room()
    assert adapter.step(0.0) == {}
    _estimate_all(adapter, 1_000_000, 0.0)
    assert adapter.budget(10.0) is None


def test_a_passed_through_camera_is_never_retargeted() -> None:
    adapter = RateAdapter()
    adapter.add("teacher", "teacher", 4_000_000, PROFILE, adjustable=False)
    adapter.add("student", "student", 2_000_000, PROFILE)
    _estimate_all(adapter, 1_000_000, 5.0)
    changes = adapter.step(5.0)
    assert "teacher" not in changes and adapter.senders["student"].current == 600_000


def test_content_that_sends_less_than_its_level_is_not_congestion() -> None:
    adapter = _room()
    for name in adapter.senders:  # a still picture: 300 kbps sent, 400 kbps estimated
        adapter.estimate(name, 400_000, 3.0, 300_000)
    assert adapter.step(3.0) == {}
    assert adapter.senders["teacher"].current == 4_000_000
