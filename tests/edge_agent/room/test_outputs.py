"""RoomOutputs ties a lesson to the room: the floor from the controller and from a clicker."""

from __future__ import annotations

import math
import pathlib

from edge_agent.profile import HardwareProfile
from edge_agent.room.outputs import RoomOutputs
from protocols.messages import FloorRequest, FloorState, JoinLesson, Subscription

PROFILE = HardwareProfile.model_validate(
    {
        "name": "lead",
        "devices": [
            {
                "name": "teacher",
                "kind": "camera",
                "role": "teacher",
                "driver": "synthetic",
                "width": 640,
                "height": 360,
                "fps": 15,
                "bitrate": 500_000,
            }
        ],
        "floor_keys": {"next": "page down"},
    }
)


def lead_join() -> JoinLesson:
    subs = [
        Subscription(source_classroom=room, track=track, kind=kind)
        for room in ("v1", "v2")
        for track, kind in (("student", "video"), ("mic", "audio"))
    ]
    return JoinLesson(
        lesson_id="L1", role="lead", publish=["teacher"], subscribe=subs, start_at=0, end_at=1
    )


async def test_a_clicker_asks_the_controller_and_applies_its_answer(
    tmp_path: pathlib.Path,
) -> None:
    asked: list[FloorRequest] = []

    async def controller(request: FloorRequest) -> FloorState:
        asked.append(request)
        return FloorState(lesson_id="L1", seq=7, speaking=request.speaking, by="keys:c")

    room = RoomOutputs(PROFILE, "c", tmp_path, {}, send_floor=controller)
    room.lesson_started(lead_join(), {})
    task = room.press("page down")
    assert task is not None
    await task
    assert [r.speaking for r in asked] == ["v1"]
    assert room.floor.seq == 7 and room.floor.speaking == "v1"
    assert room.floor.gains_db(-18.0) == {"v1": 0.0, "v2": -18.0}
    assert room.press("q") is None  # not a floor key


async def test_without_the_controller_the_clicker_still_changes_the_floor(
    tmp_path: pathlib.Path,
) -> None:
    async def unreachable(request: FloorRequest) -> FloorState:
        raise ConnectionError("controller not connected")

    room = RoomOutputs(PROFILE, "c", tmp_path, {}, send_floor=unreachable)
    room.lesson_started(lead_join(), {})
    room.apply_floor(FloorState(lesson_id="L1", seq=3, speaking="v2", muted=["v1"]))
    task = room.press("page down")  # from v2 the next room is v1 again
    assert task is not None
    await task
    assert room.floor.seq == 4 and room.floor.speaking == "v1"
    gains = room.floor.gains_db(-18.0)
    assert math.isinf(gains["v1"]) and gains["v2"] == -18.0  # v1 stays muted
    # A late, older state from the controller does not undo the room's own change.
    assert not room.apply_floor(FloorState(lesson_id="L1", seq=4, speaking="v2"))
    room.lesson_ended("L1")
    assert room.floor.lesson_id is None
