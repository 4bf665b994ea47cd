"""A Janus lesson's feeds in ``GET /api/v1/live``: the figures come from the agents'
heartbeats, and a feed's subscribers are the rooms that report receiving it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from controller.lessons.live_list import UNAVAILABLE_JANUS, _janus_feeds
from controller.lessons.patrol_janus import Listing
from controller.media_plane.viewers import Stream

LEAD, VILLAGE_A, VILLAGE_B = "city-101", "village-201", "village-202"


def _room(cid: str, media: list[dict[str, Any]]) -> Any:
    return SimpleNamespace(id=cid, health={"media": media})


def _feeds(
    rooms: dict[str, Any], online: set[str] | None = None
) -> dict[tuple[str, str], dict[str, Any]]:
    lesson: Any = SimpleNamespace(
        lead_classroom_id=LEAD, classroom_ids=[LEAD, VILLAGE_A, VILLAGE_B]
    )
    listing = Listing(
        at=0.0,
        streams=[
            Stream(1, LEAD, "0", "video", "teacher"),
            Stream(1, LEAD, "1", "audio", "mic"),
            Stream(2, VILLAGE_A, "0", "video", "student"),
        ],
    )
    up = set(rooms) if online is None else online
    return {(f["classroom"], f["track"]): f for f in _janus_feeds(lesson, listing, rooms, up)}


def test_subscribers_are_the_rooms_that_report_receiving_the_feed() -> None:
    recv = {"direction": "recv", "fps": 25.0, "bitrate_bps": 900_000.0, "loss_pct": 0.5}
    rooms = {
        LEAD: _room(
            LEAD,
            [
                {"track": "teacher", "direction": "send", "fps": 25.0, "loss_pct": 0.0},
                {"track": f"{VILLAGE_A}-student", **recv},
            ],
        ),
        VILLAGE_A: _room(
            VILLAGE_A,
            [
                {"track": f"{LEAD}-teacher", **recv, "loss_pct": 3.0},
                # a track it stopped getting: listed, but nothing flows
                {"track": f"{LEAD}-mic", "direction": "recv", "fps": 0.0, "bitrate_bps": 0.0},
            ],
        ),
        # village-202's agent has not reported yet
    }
    feeds = _feeds(rooms)
    teacher = feeds[(LEAD, "teacher")]
    assert teacher["subscribers"] == 1
    assert teacher["loss_pct"] == 3.0  # the worst of the sender's and the receivers'
    assert feeds[(LEAD, "mic")]["subscribers"] == 0
    assert feeds[(VILLAGE_A, "student")]["subscribers"] == 1  # the lead gets it
    assert teacher["frames_in"] is None and "frames_in" in UNAVAILABLE_JANUS
    assert "subscribers" in UNAVAILABLE_JANUS
    # A room that went offline keeps its last heartbeat, but receives nothing any more.
    gone = _feeds(rooms, online={LEAD})
    assert gone[(LEAD, "teacher")]["subscribers"] == 0


def test_no_heartbeat_at_all_means_no_subscriber_and_no_figures() -> None:
    feeds = _feeds({})
    teacher = feeds[(LEAD, "teacher")]
    assert teacher["subscribers"] == 0
    assert teacher["fps"] is None and teacher["loss_pct"] is None
