"""Floor control as the lead room lives it: the room called on is large and heard.

Four real agents (one lead, three receiving rooms) in a real lesson; each room has its
speakers (a PulseAudio null sink), a microphone that hears its own voice (a tone of its
own; the lead says nothing here), and its screens (Xvfb). The scheduler calls on each
receiving room in turn through the API. At the lead's speakers the called room's tone
keeps its level and the others drop by the ducking; on the lead's mid-screen (read off
the X framebuffer) the largest tile shows the called room's camera, told apart by the
size its burned-in code reads back at (each room's camera has its own width).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import av
import numpy as np
import pytest
from benchlib import room_audio as ra
from benchlib import room_rig as rr
from benchlib.janus_plane import placed_on
from benchlib.rig import LessonRig
from benchlib.screen_watch import TileSpot, read_tile
from helpers import needs
from media_backends import (
    BOTH,
    janus_farm,  # noqa: F401 - the Janus variant's server
    on_backend,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.solo,
    pytest.mark.timeout(300),
    needs(shutil.which("pulseaudio") is not None, "pulseaudio not installed"),
    needs(shutil.which("Xvfb") is not None, "Xvfb not installed"),
]

LEAD = "city-lead"
RECEIVERS = ["village-a", "village-b", "village-c"]
WIDTHS = {"village-a": 320, "village-b": 384, "village-c": 448}
# Each room's voice at its own pitch, 110 Hz or more from every harmonic of the others', so
# one room's level can be read at the lead's speakers with the other two playing.
VOICES = {
    cid: replace(voice, tone_hz=hz)
    for cid, voice, hz in zip(RECEIVERS, ra.RECEIVER_VOICES, (1370.0, 1480.0, 1590.0), strict=True)
}
DUCKED_BY_DB = 10.0  # the rooms without the floor drop by at least this (profile: 18)


@pytest.fixture(params=BOTH)
def backend(request: pytest.FixtureRequest) -> str:
    """The media backend carrying the lesson: the floor must hold on Janus as on the relay."""
    return str(request.param)


@pytest.fixture
def lesson_rooms(
    backend: str, request: pytest.FixtureRequest
) -> Iterator[tuple[LessonRig, rr.RoomRig, str]]:
    rig = LessonRig(heartbeat_s=1.0, prepare_s=4.0)
    # The harness records only the lead's speakers, and the lead says nothing: four agents,
    # a controller and the sound server already fill two cores.
    rooms = rr.RoomRig(
        rig,
        closed_loop=False,
        small_video=True,
        small_fps=5,
        echo_cancel=False,
        listen_to=(LEAD,),
        hear_mics=False,
    )
    try:
        on_backend(request, rig, backend)
        plans = [rr.RoomPlan(LEAD, "城关小学", lead=True, voice=None, camera_width=320)]
        plans += [
            rr.RoomPlan(cid, f"乡村小学 {cid[-1]}", voice=VOICES[cid], camera_width=WIDTHS[cid])
            for cid in RECEIVERS
        ]
        rooms.open(plans, online_timeout=60)
        lesson = rig.schedule(LEAD, RECEIVERS, 8.0, 90.0)
        doc = rig.wait_lesson(lesson["id"], ("live",), 60)
        placed = placed_on(doc)
        assert bool(placed) == (backend == "janus"), (backend, doc["events"])
        yield rig, rooms, lesson["id"]
    finally:
        rig.stop()
        rooms.stop()


def tone_levels(rooms: rr.RoomRig, seconds: float) -> dict[str, float]:
    """Each receiving room's tone at the lead's speakers over the last ``seconds``."""
    speaker = rooms.rooms[LEAD].speaker
    assert speaker is not None
    end = time.time() - 0.3
    heard, _ = rr._window(speaker, end - seconds, end)
    return {cid: carrier_db(heard, VOICES[cid].tone_hz) for cid in RECEIVERS}


def carrier_db(x: np.ndarray, hz: float) -> float:
    """The typical level of the tone at ``hz``, dBFS: 40 ms Hann-windowed spectra (25 Hz
    bins), the bins within 30 Hz of it. Short frames, so that the playout's 10 ms cuts and
    fills (which break a tone's phase) do not read as a lower level."""
    frame = ra.RATE // 25
    if x.size < frame:
        return -math.inf
    window = np.hanning(frame)
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), frame)[:: frame // 2]
    spectra = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    freqs = np.fft.rfftfreq(frame, 1.0 / ra.RATE)
    near = np.abs(freqs - hz) <= 30.0
    # The level while the room sounds: the 75th percentile of the frames. On a loaded
    # machine the lead's playout fills in silence for a few hundred ms at a time (up to
    # half the window when two cores carry five processes); those frames are a level of
    # their own, not a lower one, and the floor is about gains, which hold either way.
    power = float(np.percentile(np.sum(spectra[:, near], axis=1), 75))
    amplitude = 2.0 * math.sqrt(power / 1.5) / float(window.sum())  # 1.5: Hann's noise width
    return 20.0 * math.log10(amplitude) if amplitude > 0 else -math.inf


def largest_tile_room(rooms: rr.RoomRig) -> str | None:
    """Which room's camera the largest tile of the lead's mid-screen shows, from the screen."""
    status = rooms.room_status(LEAD)
    mid = status["displays"]["mid"]
    largest = max(mid["tiles"], key=lambda t: t["w"] * t["h"])
    room = rooms.rooms[LEAD]
    with av.open(
        room.display, format="x11grab", options={"video_size": f"{room.screen_w}x{room.screen_h}"}
    ) as grab:
        luma = next(grab.decode(video=0)).to_ndarray(format="gray")
    found = []
    for cid, width in WIDTHS.items():
        spot = TileSpot(
            largest["key"],
            mid["x"] + largest["x"],
            mid["y"] + largest["y"],
            largest["w"],
            largest["h"],
            width,
            width * 9 // 16,
        )
        if read_tile(luma, spot) is not None:
            found.append(cid)
    return found[0] if len(found) == 1 else None


def steady_levels(rooms: rr.RoomRig, timeout: float = 20.0) -> dict[str, float]:
    """Every room's tone once it is steady: two windows in a row within 1.5 dB.

    A room whose sound reached the lead's speakers only part-way through the window reads
    low, and a ducking measured against that reads small; so the baseline waits for every
    room's playout to have settled.
    """
    deadline = time.monotonic() + timeout
    previous = tone_levels(rooms, 2.0)
    while True:
        time.sleep(2.0)
        levels = tone_levels(rooms, 2.0)
        print(f"levels {levels}", flush=True)
        steady = all(
            math.isfinite(levels[c]) and levels[c] > -50 and abs(levels[c] - previous[c]) < 1.5
            for c in RECEIVERS
        )
        if steady:
            return levels
        assert time.monotonic() < deadline, (
            f"levels never settled: {previous} then {levels}; {diagnosis(rooms)}"
        )
        previous = levels


def diagnosis(rooms: rr.RoomRig) -> str:
    """What a failure needs: what each receiving agent says of its microphone (did the room
    speak at all), the harness's own errors, and the lead's playout."""
    said: dict[str, Any] = {}
    try:
        for room in rooms.rig.get("/classrooms"):
            health = room.get("health") or {}
            # frames a second each agent sends and receives: a relay that falls behind
            # shows as receivers sending 50 a second of sound and the lead getting fewer
            rates = {f"{m['direction']} {m['track']}": m["fps"] for m in health.get("media") or []}
            if room["id"] in RECEIVERS:
                said[room["id"]] = {
                    "audio_level_dbfs": health.get("audio_level_dbfs"),
                    "devices": health.get("devices"),
                    "fps": rates,
                }
            elif room["id"] == LEAD:
                said[LEAD] = {"fps": rates}
    except Exception as err:  # noqa: BLE001 - a diagnosis must not hide what it explains
        said = {"error": repr(err)}
    # What each receiving agent logged about its microphone and sound (a device that would
    # not open, a stream that broke).
    logged = {}
    for cid in RECEIVERS:
        log = rooms.rig.logs / f"{cid}.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        logged[cid] = [
            line[-200:]
            for line in lines
            if any(w in line.lower() for w in ("microphone", "pulse", "error", "lost"))
        ][-5:]
    # Four agents, a controller and the sound server fill two cores: on a failure, say
    # what else the machine was running (a process left over from an earlier test).
    busy = subprocess.run(
        ["ps", "-eo", "pcpu,etimes,args", "--sort=-pcpu"], capture_output=True, text=True
    ).stdout.splitlines()[:8]
    return (
        f"load {os.getloadavg()}; busiest processes: {[b[:160] for b in busy]}; "
        f"each receiving agent's microphone: {said}; harness errors: {rooms.errors()}; "
        f"the lead's playout: {rooms.room_status(LEAD).get('sound')}; "
        f"the receiving agents' logs: {logged}"
    )


def wait_for(what: str, check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_calling_on_each_room_in_turn_makes_it_large_and_heard(
    lesson_rooms: tuple[LessonRig, rr.RoomRig, str],
) -> None:
    rig, rooms, lesson_id = lesson_rooms
    time.sleep(4.0)  # keyframes, playout buffers
    baseline = steady_levels(rooms)
    for cid in RECEIVERS:
        doc = rig.put(f"/lessons/{lesson_id}/floor", {"speaking": cid, "muted": []})
        assert doc["speaking"] == cid
        wait_for(
            f"{cid} large on the lead's mid-screen", lambda c=cid: largest_tile_room(rooms) == c
        )
        time.sleep(3.0)
        levels = tone_levels(rooms, 2.5)
        for other in RECEIVERS:
            drop = baseline[other] - levels[other]
            if other == cid:
                assert drop < 6.0, (
                    f"{cid} has the floor but dropped {drop:.1f} dB: {levels}; {diagnosis(rooms)}"
                )
            else:
                assert drop > DUCKED_BY_DB, (
                    f"{other} should be ducked while {cid} speaks; dropped {drop:.1f} dB"
                    f" (before {baseline}, now {levels})"
                )
    # Muting the room with the floor silences it; releasing the floor opens every room.
    rig.put(f"/lessons/{lesson_id}/floor", {"speaking": RECEIVERS[-1], "muted": [RECEIVERS[-1]]})
    time.sleep(3.0)
    muted = tone_levels(rooms, 2.0)
    assert baseline[RECEIVERS[-1]] - muted[RECEIVERS[-1]] > 30.0, muted
    rig.put(f"/lessons/{lesson_id}/floor", {"speaking": None, "muted": []})
    time.sleep(3.0)
    opened = tone_levels(rooms, 2.0)
    assert all(baseline[c] - opened[c] < 3.0 for c in RECEIVERS), (
        f"after the floor was released: before {baseline}, now {opened}; {diagnosis(rooms)}"
    )
