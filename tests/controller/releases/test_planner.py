"""The rollout planner: rings in order, only inside the window, never during a lesson nor
within 15 minutes before one, on to the next ring when all are healthy, paused on any
failure or silence past the health deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.releases.planner import (
    Busy,
    Plan,
    Target,
    Window,
    free_for_update,
    plan,
    ring_of,
)

# 23:00 in Shanghai (UTC+8): inside a 22:00–06:00 window.
NIGHT = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
NOON = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
WINDOW = Window("22:00", "06:00", "Asia/Shanghai")
DEADLINE = timedelta(minutes=10)
ONLINE = {"a", "b", "c", "d"}


def _plan(
    targets: list[Target],
    now: datetime = NIGHT,
    ring: str = "pilot",
    busy: dict[str, list[Busy]] | None = None,
    online: set[str] | None = None,
) -> Plan:
    return plan(
        ring, targets, WINDOW, busy or {}, ONLINE if online is None else online, now, DEADLINE
    )


def test_offers_the_first_ring_only() -> None:
    targets = [Target("a", "pilot", "pending"), Target("b", "general", "pending")]
    step = _plan(targets)
    assert step.offer == ["a"] and not step.pause_reason and step.next_ring is None


def test_nothing_outside_the_window() -> None:
    step = _plan([Target("a", "pilot", "pending")], now=NOON)
    assert step.offer == [] and "outside the maintenance window" in step.waiting["a"]


@pytest.mark.parametrize(
    ("start", "end", "local", "inside"),
    [
        ("22:00", "06:00", "23:30", True),
        ("22:00", "06:00", "05:59", True),
        ("22:00", "06:00", "06:00", False),
        ("12:00", "13:30", "12:00", True),
        ("12:00", "13:30", "13:30", False),
        ("00:00", "00:00", "15:00", True),
    ],
)
def test_windows_wrap_midnight(start: str, end: str, local: str, inside: bool) -> None:
    h, m = map(int, local.split(":"))
    now = datetime(2026, 12, 7, h, m, tzinfo=UTC)
    assert Window(start, end, "UTC").contains(now) is inside


def test_a_bad_window_names_the_field() -> None:
    with pytest.raises(ValueError, match="start '25:00' must be HH:MM"):
        Window("25:00", "06:00")
    with pytest.raises(ValueError, match="time zone 'Mars/Base' is not known"):
        Window("22:00", "06:00", "Mars/Base")


def test_never_during_a_lesson_nor_15_minutes_before_one() -> None:
    during = {"a": [Busy(NIGHT - timedelta(minutes=5), NIGHT + timedelta(minutes=40), "L1")]}
    step = _plan([Target("a", "pilot", "pending")], busy=during)
    assert step.offer == [] and "lesson L1 under way" in step.waiting["a"]
    soon = {"a": [Busy(NIGHT + timedelta(minutes=14), NIGHT + timedelta(minutes=54), "L2")]}
    step = _plan([Target("a", "pilot", "pending")], busy=soon)
    assert step.offer == [] and "lesson L2 starts at" in step.waiting["a"]
    later = {"a": [Busy(NIGHT + timedelta(minutes=16), NIGHT + timedelta(minutes=56), "L3")]}
    assert _plan([Target("a", "pilot", "pending")], busy=later).offer == ["a"]
    ended = [Busy(NIGHT - timedelta(minutes=45), NIGHT, "L0")]
    assert free_for_update("a", ended, NIGHT) == ""


def test_offline_agents_wait() -> None:
    step = _plan([Target("a", "pilot", "pending")], online=set())
    assert step.offer == [] and step.waiting["a"] == "agent offline"


def test_advances_when_every_agent_of_the_ring_is_healthy() -> None:
    targets = [
        Target("a", "pilot", "healthy"),
        Target("b", "pilot", "offered", NIGHT),
        Target("c", "general", "pending"),
    ]
    assert _plan(targets).next_ring is None
    targets[1] = Target("b", "pilot", "healthy")
    step = _plan(targets)
    assert step.next_ring == "general" and step.offer == []  # early has no classroom
    assert _plan(targets, ring="general").offer == ["c"]
    done = [Target("a", "pilot", "healthy"), Target("c", "general", "healthy")]
    assert _plan(done, ring="general").done


def test_pauses_at_the_ring_on_any_failure() -> None:
    targets = [
        Target("a", "pilot", "rolled_back", NIGHT, "health check failed (devices)"),
        Target("b", "pilot", "pending"),
    ]
    step = _plan(targets)
    assert step.offer == [] and step.next_ring is None
    assert step.pause_reason == "ring pilot: a rolled back: health check failed (devices)"


def test_silence_past_the_health_deadline_fails_and_pauses() -> None:
    targets = [Target("a", "pilot", "installing", NIGHT - timedelta(minutes=11))]
    step = _plan(targets)
    assert step.timed_out == ["a"] and "did not report healthy within 600 s" in step.pause_reason
    fresh = [Target("a", "pilot", "installing", NIGHT - timedelta(minutes=9))]
    assert _plan(fresh).timed_out == []


def test_ring_of_a_classroom_over_its_school() -> None:
    rings = {("school", "实验小学"): "early", ("classroom", "r1"): "pilot"}
    assert ring_of("r1", "实验小学", rings) == "pilot"
    assert ring_of("r2", "实验小学", rings) == "early"
    assert ring_of("r3", "中心小学", rings) == "general"
