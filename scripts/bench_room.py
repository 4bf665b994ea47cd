"""What the people in the rooms hear and see, measured at the speakers and on the screens.

A real 1+1 lesson like the demo's: a controller and two agents on loopback, each room
with its speakers (a PulseAudio null sink), its microphone (another sink's monitor) and
its screens (Xvfb). A room simulator feeds each room's speakers back into its microphone
at −6 dB with 60 ms of delay, in both rooms at once, and speaks into each microphone:
each room reads a text aloud (espeak-ng), with a short 2 kHz (lead) or 3 kHz (receiving
room) burst on two whole seconds in three, at its own offset in the second.

Figures (``--json``: the last line is one JSON object):
- ``mouth_to_ear_p50_ms`` / ``_p95_ms``: the lead's microphone → the receiving room's
  speakers, from the bursts said while the class listens;
- ``display_g2g_p50_ms`` / ``_p95_ms``: the lead's camera → the receiving room's screen,
  from the burned-in codes read off the X framebuffer;
- ``av_sync_ms``: sound ahead of picture at the receiving room (ITU-R BT.1359's sign:
  positive is sound early; the window is −125..+45);
- ``audio_gap_max_ms``: the longest silence at the receiving room's speakers while the
  lead was talking a mouth-to-ear earlier (what the playout inserted, not the pauses of
  the lead's speech);
- ``echo_return_db``: the lead's bursts back at the lead's own speakers, against how
  loud they are at the receiving room's, with both loops closed, in the seconds the
  class listens (the class answers in every other 5 s; the lead talks throughout);
- ``howl``: whether the level at either room's speakers keeps growing;
- ``playout_cpu_pct``: the room threads' CPU (playout and mixing, the speakers' PulseAudio
  stream and their watcher, layout and drawing, local decoding) in the busier agent, % of
  one core; the microphone's capture is not the room's and is left out;
- ``agent_cpu_pct_by_room``: each agent's whole process (all its threads), % of one core.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from benchlib import room_audio as ra  # noqa: E402
from benchlib import room_rig as rr  # noqa: E402
from benchlib.rig import LessonRig, RigError  # noqa: E402

LEAD, RECEIVER = "city-no1-101", "village-2-201"
SETTLE_S = 6.0  # the first seconds of a lesson: keyframes, buffers, the echo canceller
TURN_S = 5  # the class answers in every other 5 s; the lead teacher talks throughout


def run(seconds: float, lead_in: float, keep: bool = False) -> dict[str, Any]:
    """Run one lesson with both rooms' loops closed and measure it."""
    rig = LessonRig()
    rooms = rr.RoomRig(rig)
    lead_voice = ra.speaking(ra.LEAD_VOICE, "lead")
    receiver_voice = replace(ra.speaking(ra.RECEIVER_VOICES[0], "receiver"), turn_s=TURN_S)
    try:
        rooms.open(
            [
                rr.RoomPlan(LEAD, "City No.1 Primary", lead=True, voice=lead_voice),
                rr.RoomPlan(RECEIVER, "Village 2 Primary", voice=receiver_voice),
            ]
        )
        watch = rooms.watch_screen(RECEIVER, "panel")
        lesson = rig.schedule(LEAD, [RECEIVER], lead_in, seconds)
        print(f"bench-room: lesson {lesson['id']}, {seconds:g} s, loops closed", flush=True)
        rig.wait_lesson(lesson["id"], ("live",), lead_in + 30)
        time.sleep(SETTLE_S)
        start = time.time()
        before = {cid: rooms.room_status(cid) for cid in (LEAD, RECEIVER)}
        time.sleep(max(1.0, seconds - SETTLE_S - 2.0))
        end = time.time()
        after = {cid: rooms.room_status(cid) for cid in (LEAD, RECEIVER)}
        rig.wait_lesson(lesson["id"], ("ended", "recorded", "uploaded", "failed"), 60)
        doc = figures(rooms, watch, start, end, before, after, lead_voice, receiver_voice)
        doc["harness_errors"] = rooms.errors()
        if keep:
            rooms.save(rig.root / "sound", start, end)
            print(f"bench-room: recordings, state and logs are in {rig.root}")
        return doc
    finally:
        rig.stop()
        rooms.stop()


def figures(
    rooms: rr.RoomRig,
    watch: Any,
    start: float,
    end: float,
    before: dict[str, Any],
    after: dict[str, Any],
    lead_voice: ra.Voice,
    receiver_voice: ra.Voice,
) -> dict[str, Any]:
    """The figures from what the speakers played and the screen showed."""
    lead, recv = rooms.rooms[LEAD], rooms.rooms[RECEIVER]
    assert lead.speaker is not None and recv.speaker is not None
    m2e = rr.mouth_to_ear(recv.speaker, ra.LEAD_VOICE, start, end, receiver_voice)
    back = rr.mouth_to_ear(lead.speaker, receiver_voice, start, end)
    teacher = f"{LEAD}-teacher"
    screen = list(rr.screen_latency(watch, teacher, start, end).values())
    howl_lead, levels_lead = rr.howl(lead.speaker, start, end)
    howl_recv, levels_recv = rr.howl(recv.speaker, start, end)
    cpu = {cid: rr.cpu_pct(before[cid], after[cid]) for cid in (LEAD, RECEIVER)}
    playout = after[RECEIVER].get("sound", {}).get("sources", {}).get(LEAD, {})
    return {
        "mouth_to_ear_p50_ms": rr._pct(m2e, 50),
        "mouth_to_ear_p95_ms": rr._pct(m2e, 95),
        "mouth_to_ear_samples": len(m2e),
        "mouth_to_ear_ms": [round(v, 1) for v in m2e],
        "back_mouth_to_ear_p50_ms": rr._pct(back, 50),
        "display_g2g_p50_ms": rr._pct(screen, 50),
        "display_g2g_p95_ms": rr._pct(screen, 95),
        "display_frames_seen": len(screen),
        "av_sync_ms": rr.av_sync_ms(watch, teacher, m2e, start, end),
        "audio_gap_max_ms": round(
            rr.inserted_silence_ms(
                lead_voice, recv.speaker, statistics.median(m2e or [0]), start, end, receiver_voice
            ),
            1,
        ),
        "playout_gap_max_ms": playout.get("gap_max_ms"),
        "echo_return_db": rr.echo_return_db(
            lead.speaker, recv.speaker, ra.LEAD_VOICE, start, end, receiver_voice
        ),
        "howl": bool(howl_lead or howl_recv),
        "speaker_levels_dbfs": {LEAD: levels_lead, RECEIVER: levels_recv},
        "playout_cpu_pct": max((v for v in cpu.values() if v is not None), default=None),
        "playout_cpu_pct_by_room": cpu,
        "agent_cpu_pct_by_room": {cid: agent_cpu_pct(before[cid], after[cid]) for cid in ROOMS},
        "playout_cpu_pct_by_thread": {
            cid: rr.cpu_by_thread(before[cid], after[cid]) for cid in ROOMS
        },
        "playout": {
            cid: (after[cid].get("sound") or {}).get("sources") for cid in (LEAD, RECEIVER)
        },
        "screens_per_s": {cid: rr.screen_rates(before[cid], after[cid]) for cid in ROOMS},
        "seconds_measured": round(end - start, 1),
    }


ROOMS = (LEAD, RECEIVER)


def agent_cpu_pct(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """The whole agent process's CPU (every thread, from /proc) between two ``room.json``
    readings, % of one core: a saving in the room threads must not reappear elsewhere."""
    try:
        wall = after["at"] - before["at"]
        used = after["cpu_s"]["process"] - before["cpu_s"]["process"]
    except (KeyError, TypeError):
        return None
    return round(100.0 * used / wall, 1) if wall > 0 else None


TARGETS = {
    "mouth_to_ear_p50_ms": ("<", 150),
    "mouth_to_ear_p95_ms": ("<", 250),
    "display_g2g_p50_ms": ("<", 150),
    "display_g2g_p95_ms": ("<", 250),
    "audio_gap_max_ms": ("<=", 100),
    "echo_return_db": ("<=", -25),
    "playout_cpu_pct": ("<", 10),
}


def verdicts(doc: dict[str, Any]) -> dict[str, bool]:
    """Each target met or not."""
    out: dict[str, bool] = {}
    for key, (op, limit) in TARGETS.items():
        value = doc.get(key)
        out[key] = value is not None and (value < limit if op == "<" else value <= limit)
    sync = doc.get("av_sync_ms")
    out["av_sync_ms"] = sync is not None and -125 <= sync <= 45
    out["howl"] = doc.get("howl") is False
    return out


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=75.0, help="lesson length (≥ 70)")
    parser.add_argument("--lead-in", type=float, default=8.0)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument(
        "--keep", action="store_true", help="keep the state, logs and what each room heard"
    )
    args = parser.parse_args()
    try:
        doc = run(args.seconds, args.lead_in, args.keep)
    except RigError as err:
        print(f"bench-room: {err}", file=sys.stderr)
        return 1
    doc["targets_met"] = verdicts(doc)
    for key, value in doc.items():
        if key not in ("speaker_levels_dbfs", "targets_met", "playout", "mouth_to_ear_ms"):
            print(f"{key:>28}: {value}")
    for cid, sources in (doc.get("playout") or {}).items():
        for source, figures_ in (sources or {}).items():
            print(f"{'playout':>28}: {source} → {cid}: {figures_}")
    missed = [k for k, ok in doc["targets_met"].items() if not ok]
    print(f"{'targets':>28}: {'all met' if not missed else 'missed ' + ', '.join(missed)}")
    if args.json:
        # numpy's scalars (np.bool_, np.float64) as plain JSON values
        print(json.dumps(doc, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
