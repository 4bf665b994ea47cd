"""Presence: silent agents go offline; one that was only late comes back as it was."""

from __future__ import annotations

import pytest

from controller.agents import presence as presence_mod
from controller.agents.presence import Presence


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr("controller.agents.presence.time.monotonic", clock)
    return clock


def test_a_late_agent_is_offline_then_online_again_without_registering(clock: _Clock) -> None:
    gone: list[str] = []
    presence = Presence(0.5, on_offline=gone.append)
    presence.registered("village-1-201", "lesson-1")
    clock.now += 1.0
    assert presence.sweep() == [] and presence.seen("village-1-201")
    clock.now += 1.3  # a busy second at a period boundary: past the 1.25 s time-to-dead
    assert presence.sweep() == ["village-1-201"] and gone == ["village-1-201"]
    assert not presence.is_online("village-1-201")
    assert presence.seen("village-1-201")  # its heartbeat was late, not lost
    assert presence.is_online("village-1-201") and presence.revived == 1
    clock.now += 1.0
    assert presence.sweep() == []


def test_an_agent_silent_too_long_or_never_registered_must_register(clock: _Clock) -> None:
    presence = Presence(0.5)
    assert not presence.seen("city-1-101")
    presence.registered("city-1-101", None)
    clock.now += 2.0
    presence.sweep()
    clock.now += presence_mod.REVIVE_WITHIN_S
    assert not presence.seen("city-1-101")
    presence.registered("city-1-101", None)
    assert presence.seen("city-1-101") and presence.revived == 0
