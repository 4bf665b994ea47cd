"""A delivery lesson on demand (专递课堂 by video): a village room plays a city lesson's
recording from the resource library in class, and it counts as held.

Real processes: the controller and two agents, their speakers PulseAudio null sinks and
their screens Xvfb. A live lesson is recorded first; the lead's teacher recording is
published, approved by an inspector, and scheduled to play in the village room. The
test hears the recorded room's tone at the village room's speakers, reads the recorded
camera's burned-in frame counters on its screen, and finds the lesson held.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from benchlib import room_audio as ra
from benchlib import room_rig as rr
from benchlib.rig import LessonRig
from benchlib.room_sim import MonitorRecorder
from benchlib.screen_watch import first_seen
from helpers import needs

pytestmark = [
    pytest.mark.solo,
    pytest.mark.timeout(300),
    needs(shutil.which("pulseaudio") is not None, "pulseaudio not installed"),
    needs(shutil.which("Xvfb") is not None, "Xvfb not installed"),
]

LEAD, VILLAGE = "city-101", "village-201"
RECORDED_S = 12.0


def _call(
    rig: LessonRig, method: str, path: str, doc: dict[str, Any] | None, token: str
) -> tuple[int, Any]:
    request = urllib.request.Request(
        rig.api + path,
        data=None if doc is None else json.dumps(doc).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30, context=rig.ssl_context()) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture
def rooms() -> Iterator[tuple[LessonRig, rr.RoomRig]]:
    rig = LessonRig(heartbeat_s=1.0, prepare_s=4.0, segment_seconds=4.0)
    rooms = rr.RoomRig(
        rig,
        synthetic_mic=True,
        closed_loop=False,
        small_video=True,
        echo_cancel=False,
        listen_to=(),
    )
    try:
        rooms.open([rr.RoomPlan(LEAD, "城关小学", lead=True), rr.RoomPlan(VILLAGE, "山区小学")])
        yield rig, rooms
    finally:
        rig.stop()
        rooms.stop()


def test_a_village_room_plays_an_approved_recording_and_it_counts_as_held(
    rooms: tuple[LessonRig, rr.RoomRig],
) -> None:
    rig, room_rig = rooms
    admin = rig.api_token
    rig.controller_cli("user", "add", "inspector-1", "--role", "inspector", "--no-password")
    inspector = rig.controller_cli("token", "create", "inspector-1").stdout.strip()

    # A live lesson of the city room, recorded.
    live = rig.schedule(LEAD, [VILLAGE], 5.0, RECORDED_S)
    rig.wait_lesson(live["id"], ("uploaded",), 120)

    # Its teacher recording, published and approved by someone else.
    ask = {
        "lesson": live["id"],
        "classroom": LEAD,
        "track": "teacher",
        "title": "分数的认识",
        "subject": "数学",
    }
    status, item = _call(rig, "POST", "/library/items", ask, admin)
    assert status == 201, item
    status, refused = _call(rig, "POST", f"/library/items/{item['id']}/deliveries", {}, admin)
    assert status == 400, refused  # no classroom: named
    start = datetime.now(UTC) + timedelta(seconds=10)
    end = start + timedelta(seconds=RECORDED_S + 8)  # the default adds a minute
    body = {"classroom": VILLAGE, "start": start.isoformat(), "end": end.isoformat()}
    status, refused = _call(rig, "POST", f"/library/items/{item['id']}/deliveries", body, admin)
    assert status == 409 and "approve" in refused["error"], refused  # still pending
    decision = {"decision": "approve"}
    status, reviewed = _call(
        rig, "POST", f"/library/items/{item['id']}/review", decision, inspector
    )
    assert status == 200, reviewed

    # The village room plays it in class.
    speaker = MonitorRecorder(room_rig.pulse.server, f"{VILLAGE}_spk.monitor")
    speaker.start()
    watch = room_rig.watch_screen(VILLAGE)
    try:
        status, made = _call(rig, "POST", f"/library/items/{item['id']}/deliveries", body, admin)
        assert status == 201, made
        lesson_id = made["lesson"]["id"]
        duration = made["playback"]["duration_s"]
        assert RECORDED_S - 2 <= duration <= RECORDED_S + 2, made
        status, clash = _call(rig, "POST", f"/library/items/{item['id']}/deliveries", body, admin)
        assert status == 409 and "has lesson" in clash["error"], clash
        rig.wait_lesson(lesson_id, ("live",), 40)
        playing_from = time.time()
        doc = rig.wait_lesson(lesson_id, ("uploaded",), 60)
    finally:
        speaker.stop()
        watch.stop()
    assert "nothing to upload" in doc["events"][-1]["detail"], doc["events"][-3:]

    # Heard at the village room's speakers: the recorded room's tone, where there was none.
    before, _ = rr._window(speaker, playing_from - 6.0, playing_from - 1.0)
    during, _ = rr._window(speaker, playing_from + 2.0, playing_from + duration - 2.0)
    quiet, heard = ra.band_level_db(before, 440.0), ra.band_level_db(during, 440.0)
    print(f"the recorded tone at the village speakers: {heard:.1f} dB (before: {quiet:.1f} dB)")
    assert heard > quiet + 30 and heard > -50, (quiet, heard)

    # Seen on its panel: the recorded camera's frames, their counters advancing.
    seen = first_seen(watch.sightings, f"{LEAD}-teacher")
    print(f"{len(seen)} recorded frames read on the village panel in {duration:.1f} s")
    assert len(seen) >= 5 * (duration - 4), f"{len(seen)} recorded frames read on the screen"

    # Held: it played the item, as its room reported; the fetch is in the audit log.
    status, playback = _call(rig, "GET", f"/lessons/{lesson_id}/playback", None, admin)
    assert status == 200 and playback["held"] is True, playback
    assert playback["played_s"] >= 0.9 * duration and playback["error"] == "", playback
    status, rows = _call(rig, "GET", "/audit?action=playback_fetch", None, admin)
    assert status == 200 and any(r["username"] == f"agent:{VILLAGE}" for r in rows), rows
