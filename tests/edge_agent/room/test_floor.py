"""FloorControl: seq ordering, the lead's keys cycling through the rooms, mute, gains."""

from __future__ import annotations

import math

import pytest

from edge_agent.profile import FloorKeys
from edge_agent.room.floor import FloorControl
from protocols.messages import FloorRequest, FloorState, JoinLesson, Subscription

KEYS = FloorKeys()
ROOMS = ["village-1", "village-2", "village-3"]


def _join(role: str, sources: list[str], floor: FloorState | None = None) -> JoinLesson:
    subscribe = [
        Subscription(source_classroom=src, track=track, kind=kind)  # type: ignore[arg-type]
        for src in sources
        for track, kind in (("student", "video"), ("mic", "audio"))
    ]
    return JoinLesson(
        lesson_id="L1",
        role=role,  # type: ignore[arg-type]
        publish=["mic"],
        subscribe=subscribe,
        start_at=0.0,
        end_at=1.0,
        floor=floor,
    )


def _state(seq: int, speaking: str | None = None, muted: list[str] | None = None) -> FloorState:
    return FloorState(lesson_id="L1", seq=seq, speaking=speaking, muted=muted or [], duck_db=-20)


def _lead(floor: FloorState | None = None) -> FloorControl:
    control = FloorControl("city")
    control.reset(_join("lead", ROOMS, floor))
    return control


def test_reset_takes_the_rooms_in_subscribe_order_and_the_joins_floor() -> None:
    control = _lead(_state(4, "village-2"))
    assert control.is_lead and control.receiving == ROOMS
    assert (control.seq, control.speaking) == (4, "village-2")
    control.reset(None)
    assert control.lesson_id is None and control.state is None and control.receiving == []
    assert control.gains_db() == {}


def test_lower_or_equal_seq_is_ignored_and_other_lessons_too() -> None:
    control = _lead()
    assert control.apply(_state(2, "village-1"))
    assert not control.apply(_state(1, "village-3"))  # older
    assert not control.apply(_state(2, "village-3"))  # same seq
    assert control.speaking == "village-1"
    assert not control.apply(FloorState(lesson_id="L2", seq=9, speaking="village-3"))
    assert not control.apply(_state(3, "village-1"))  # newer, nothing different
    assert control.seq == 3
    assert control.apply(_state(7, None))  # a gap in seq is fine
    assert control.speaking is None


def test_gains_nobody_speaking_one_speaking_and_muted() -> None:
    control = _lead()
    assert control.gains_db() == dict.fromkeys(ROOMS, 0.0)  # before any state
    control.apply(_state(1))
    assert control.gains_db() == dict.fromkeys(ROOMS, 0.0)
    control.apply(_state(2, "village-2"))
    assert control.gains_db() == {"village-1": -20, "village-2": 0.0, "village-3": -20}
    control.apply(_state(3, "village-2", ["village-3"]))
    gains = control.gains_db()
    assert gains["village-3"] == -math.inf and gains["village-1"] == -20
    control.apply(_state(4, "village-2", ["village-2"]))  # the room called on, muted
    assert control.gains_db()["village-2"] == -math.inf


def test_a_receiving_room_hears_the_lead_at_full_level() -> None:
    control = FloorControl("village-1")
    control.reset(_join("receiver", ["city"], _state(2, "village-2")))
    assert not control.is_lead and control.lead == "city" and control.receiving == []
    assert control.gains_db() == {"city": 0.0}
    # A research session: the lead is the first source; the other sites are ducked.
    control.reset(_join("receiver", ["city", "village-2", "village-3"], _state(2, "village-2")))
    assert control.gains_db() == {"city": 0.0, "village-2": 0.0, "village-3": -20}


def test_next_and_previous_cycle_through_the_rooms() -> None:
    control = _lead()
    called = []
    for _ in range(4):
        request = control.on_key("page down", KEYS)
        assert request is not None
        called.append(request.speaking)
        control.apply(control.local_change(request))
    assert called == ["village-1", "village-2", "village-3", "village-1"]
    control.apply(_state(control.seq + 1, None))
    request = control.on_key("Page Up", KEYS)  # case does not matter; from nobody: the last
    assert request is not None and request.speaking == "village-3"
    control.apply(_state(control.seq + 1, "village-1"))
    request = control.on_key("page up", KEYS)
    assert request is not None and request.speaking == "village-3"  # wraps backwards


def test_release_and_mute() -> None:
    control = _lead(_state(1))
    assert control.on_key("escape", KEYS) is None  # nobody to release
    assert control.on_key("m", KEYS) is None  # nobody to mute
    control.apply(_state(2, "village-2", ["village-1"]))
    assert control.on_key("escape", KEYS) == FloorRequest(
        lesson_id="L1", speaking=None, muted=["village-1"]
    )
    muted = control.on_key("m", KEYS)
    assert muted is not None and muted.muted == ["village-1", "village-2"]
    control.apply(control.local_change(muted))
    unmuted = control.on_key("m", KEYS)
    assert unmuted is not None and unmuted.muted == ["village-1"]
    assert unmuted.speaking == "village-2"


def test_keys_do_nothing_in_a_receiving_room_without_a_lesson_or_unmapped() -> None:
    receiver = FloorControl("village-1")
    receiver.reset(_join("receiver", ["city"], _state(1)))
    assert receiver.on_key("page down", KEYS) is None
    idle = FloorControl("city")
    assert idle.on_key("page down", KEYS) is None
    lead = _lead()
    assert lead.on_key("f12", KEYS) is None
    assert lead.on_key("", KEYS) is None
    custom = FloorKeys(next="b", previous="", release="", mute="")
    request = lead.on_key("b", custom)
    assert request is not None and request.speaking == "village-1"
    assert lead.on_key("page down", custom) is None


def test_local_change_raises_seq_and_says_by_keys() -> None:
    control = _lead(_state(5, "village-1"))
    request = FloorRequest(lesson_id="L1", speaking="village-3", muted=[])
    state = control.local_change(request)
    assert (state.seq, state.speaking, state.by, state.duck_db) == (
        6,
        "village-3",
        "keys:city",
        -20,
    )
    assert control.seq == 5  # not applied until asked
    assert control.apply(state) and control.speaking == "village-3"
    assert not control.apply(_state(6, "village-2"))  # the controller's equal seq loses
    fresh = _lead()
    assert fresh.local_change(request).seq == 1
    with pytest.raises(ValueError, match="reset\\(\\) with the lesson's join"):
        fresh.local_change(FloorRequest(lesson_id="L9"))
