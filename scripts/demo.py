"""Run a real scheduled 1+1 dual-teacher lesson on loopback and summarise it.

Starts a controller and two synthetic classroom agents as separate processes, enrols
them, schedules a lesson a few seconds ahead, waits until its recordings are in storage,
checks them with ffprobe and prints (and optionally writes) the figures.

With ``--media-plane janus`` the lesson's media goes through a real Janus VideoRoom that
the demo starts itself, in a network namespace of its own (as the tests do: libnice
gathers no loopback candidates), instead of the controller's built-in relay. That needs
root and Debian's janus (``scripts/bootstrap janus``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
PROFILE = REPO / "hardware_profiles" / "synthetic.toml"
LEAD, RECEIVER = "city-no1-101", "village-2-201"
sys.path.insert(0, str(REPO / "scripts"))

from benchlib import janus_plane  # noqa: E402
from benchlib import room_audio as ra  # noqa: E402
from benchlib import room_rig as rr  # noqa: E402
from benchlib.janus import JanusError  # noqa: E402
from benchlib.lesson_summary import summarise  # noqa: E402
from benchlib.media_check import probe_recording  # noqa: E402
from benchlib.rig import LessonRig, RigError  # noqa: E402


def room_figures(rooms: rr.RoomRig, watch: Any, start: float, end: float) -> dict[str, Any]:
    """Mouth to ear at the receiving room's speakers (the synthetic microphone clicks on
    each whole second) and the lead camera on the receiving room's screen."""
    speaker = rooms.rooms[RECEIVER].speaker
    assert speaker is not None
    m2e = rr.mouth_to_ear(speaker, ra.SYNTHETIC_CLICKS, start, end)
    screen = list(rr.screen_latency(watch, f"{LEAD}-teacher", start, end).values())
    return {
        "mouth_to_ear_ms": {"p50": rr._pct(m2e, 50), "p95": rr._pct(m2e, 95), "n": len(m2e)},
        "on_screen_ms": {
            "p50": rr._pct(screen, 50),
            "p95": rr._pct(screen, 95),
            "n": len(screen),
        },
    }


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="lesson length")
    parser.add_argument("--json", type=pathlib.Path, help="also write the summary here")
    parser.add_argument(
        "--clean",
        action="store_true",
        help="delete the recordings, state and logs afterwards (by default "
        "they are kept so the recordings listed can be played)",
    )
    parser.add_argument(
        "--lead-in", type=float, default=6.0, help="seconds from scheduling to lesson start"
    )
    parser.add_argument(
        "--media-plane",
        choices=janus_plane.BACKENDS,
        default="builtin",
        help="what carries the lesson's media: the controller's built-in relay (default), or "
        "a Janus the demo starts in a network namespace (needs root and scripts/bootstrap janus)",
    )
    args = parser.parse_args()
    if args.media_plane == "janus" and (why := janus_plane.missing()) is not None:
        print(f"demo: --media-plane janus: {why}", file=sys.stderr)
        return 2

    rig = LessonRig()
    farm = janus_plane.JanusFarm()
    # Each room's speakers (a PulseAudio null sink) and screens (Xvfb), so the demo hears
    # and sees what the people in the rooms would; the microphones stay synthetic.
    rooms = rr.RoomRig(rig, synthetic_mic=True, closed_loop=False, echo_cancel=False)
    try:
        if args.media_plane == "janus":
            janus_plane.use_janus(rig, {"demo": farm.start()})
        rooms.open(
            [
                rr.RoomPlan(LEAD, "City No.1 Primary", lead=True),
                rr.RoomPlan(RECEIVER, "Village 2 Primary"),
            ]
        )
        watch = rooms.watch_screen(RECEIVER, "panel")
        lesson = rig.schedule(LEAD, [RECEIVER], args.lead_in, args.seconds)
        print(
            f"demo: lesson {lesson['id']} {LEAD} → {RECEIVER}, starts in "
            f"{args.lead_in:g} s, lasts {args.seconds:g} s",
            flush=True,
        )
        rig.wait_lesson(lesson["id"], ("live",), args.lead_in + 30)
        live_at = time.time()
        time.sleep(args.seconds)
        room = room_figures(rooms, watch, live_at + 3.0, live_at + args.seconds - 1.0)
        doc = rig.wait_lesson(
            lesson["id"], ("uploaded", "failed"), args.lead_in + args.seconds + 120
        )
        checks = [
            probe_recording(pathlib.Path(r["path"]), args.seconds)
            | {"classroom": r["classroom"], "track": r["track"]}
            for r in doc["recordings"]
        ]
        summary = {"backend": args.media_plane} | summarise(doc, checks) | room
        summary["placement"] = janus_plane.placed_on(doc)
    except (RigError, JanusError) as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    finally:
        rig.stop()
        rooms.stop()
        farm.stop()
    _print(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    ok = summary["state"] == "uploaded" and all(c["ok"] for c in summary["recording_checks"])
    if args.clean and ok:
        shutil.rmtree(rig.root, ignore_errors=True)
    else:
        print(f"demo: recordings, state and logs are in {rig.root}")
    return 0 if ok else 1


def _print(summary: dict[str, Any]) -> None:
    print(f"\nlesson {summary['lesson_id']}: {summary['state']}")
    where = "; ".join(summary["placement"]) or "the controller's built-in relay"
    print(f"  media backend: {summary['backend']} ({where})")
    for key, sent in summary["frames_sent"].items():
        got = summary["frames_received"].get(key, {})
        print(
            f"  {key:<28} sent {sent:>6}   received "
            + ", ".join(f"{c}: {n}" for c, n in got.items())
        )
    for key, ratio in summary["delivery_ratio"].items():
        print(f"  delivered {key:<44} {ratio:.2%}")
    lat = summary["latency_ms"]
    print(f"  glass-to-glass latency (teacher camera): p50 {lat['p50']} ms, p95 {lat['p95']} ms")
    for key, value in lat["per_track"].items():
        print(f"    {key:<46} p50 {value['p50']} ms  p95 {value['p95']} ms")
    ear, screen = summary["mouth_to_ear_ms"], summary["on_screen_ms"]
    print(
        f"  mouth to ear (lead microphone → receiving room's speakers): p50 {ear['p50']} ms, "
        f"p95 {ear['p95']} ms ({ear['n']} clicks)"
    )
    print(
        f"  on screen (lead camera → receiving room's panel): p50 {screen['p50']} ms, "
        f"p95 {screen['p95']} ms ({screen['n']} frames)"
    )
    for c in summary["recording_checks"]:
        mark = "ok " if c["ok"] else "BAD"
        print(
            f"  [{mark}] {c['path']}  {'+'.join(c['streams'])}  {c['duration_s']:.2f} s"
            + ("" if c["ok"] else f"  {'; '.join(c['problems'])}")
        )


if __name__ == "__main__":
    sys.exit(main())
