"""How fast an alert reaches a person, measured at a group robot.

A real lesson on loopback (the controller and an agent as processes, ``LessonRig``): the
lead classroom's teacher camera is an IP camera (GStreamer's RTSP server) and the county
has subscribed the school's DingTalk group robot, a loopback receiver that checks the
signature as DingTalk does. Mid-lesson the camera is pulled; later it flaps (plugged and
pulled again every ``FLAP_S``) for ``--minutes``.

Figures (``--json``: the last line is one JSON object):
- ``alert_delivery_s``: camera pulled → the device_lost message at the robot (the agent
  notices, its next heartbeat raises the alert, the dispatcher sends it);
- ``flap_raises``: how many times the alert was raised again while the camera flapped
  (seen on the dashboard as a new first_seen);
- ``flap_messages`` / ``duplicates``: messages the robot got for it in that time, beyond
  the first (the subscription's hold-down is 10 minutes: 0 is the target);
- ``refused``: posts the robot refused (a bad signature would show here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys
import threading
import time
import urllib.request
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests"), str(REPO)]

from benchlib.rig import LessonRig  # noqa: E402
from peers.robot_webhook import RobotReceiver  # noqa: E402
from peers.rtsp import RtspCamera  # noqa: E402

LEAD, RECEIVER = "city-no1-101", "village-2-201"
SCHOOL = "City No.1 Primary"
FLAP_S = 20.0  # pulled for this long, then plugged for as long
KEY = "device_lost:teacher"
PROFILE = """
name = "bench-alerts"

[[devices]]
name = "teacher"
kind = "camera"
role = "teacher"
driver = "rtsp"
url = "{url}"
width = 640
height = 360
fps = 15
bitrate = 600000

[[devices]]
name = "mic"
kind = "microphone"
role = "room"
driver = "synthetic"
bitrate = 48000
"""


class Robot:
    """The loopback robot, served from a thread of its own."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.peer = RobotReceiver()

    def __enter__(self) -> RobotReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.peer.__aenter__(), self._loop).result(10)
        return self.peer

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.peer.__aexit__(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def post(rig: LessonRig, path: str, doc: dict[str, Any]) -> Any:
    """POST a JSON document to the API as the rig's admin."""
    request = urllib.request.Request(
        rig.api + path,
        data=json.dumps(doc).encode(),
        method="POST",
        headers={**rig.auth_headers, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10, context=rig.ssl_context()) as resp:
        return json.loads(resp.read())


def ours(robot: RobotReceiver) -> list[float]:
    """Arrival times of the robot's messages about the teacher camera."""
    return [m.at for m in list(robot.messages) if KEY in m.text]


def wait_for(what: str, predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def raised_at(rig: LessonRig) -> str | None:
    """The teacher camera alert's first_seen on the dashboard, if it is active."""
    for alert in rig.get("/dashboard")["alerts"]:
        if alert["classroom"] == LEAD and alert["key"] == KEY:
            return str(alert["first_seen"])
    return None


def run(minutes: float) -> dict[str, Any]:
    """One lesson: pull the camera, then let it flap for ``minutes``."""
    rig = LessonRig(heartbeat_s=1.0, prepare_s=4.0)
    camera = RtspCamera(size="640x360", fps=15)
    profile = rig.root / "bench-alerts.toml"
    doc: dict[str, Any] = {}
    try:
        with Robot() as robot:
            camera.plug()
            profile.write_text(PROFILE.format(url=camera.url))
            rig.start_controller()
            post(
                rig,
                "/notify/subscriptions",
                {
                    "name": "school technicians",
                    "school": SCHOOL,
                    "channel": "dingtalk",
                    "config": {"webhook": robot.dingtalk_url, "secret": robot.secret},
                    "min_severity": "warning",
                    "hold_down_minutes": 10,
                },
            )
            rig.enrol_and_start_agent(LEAD, rig.add_classroom(LEAD, SCHOOL), profile)
            rig.enrol_and_start_agent(RECEIVER, rig.add_classroom(RECEIVER, "Village 2"))
            rig.wait_online([LEAD, RECEIVER], 60)
            seconds = 60 + minutes * 60 + 60
            lesson = rig.schedule(LEAD, [RECEIVER], 8, seconds)
            rig.wait_lesson(lesson["id"], ("live",), 60)
            time.sleep(5)  # the camera streams into the lesson
            assert not ours(robot), "a camera alert before the camera was pulled"

            pulled = time.monotonic()
            camera.unplug()
            [arrived] = wait_for("the device_lost message", lambda: ours(robot), 60)
            doc["alert_delivery_s"] = round(arrived - pulled, 2)
            print(f"bench-alerts: camera pulled → robot in {doc['alert_delivery_s']} s", flush=True)

            raises = {raised_at(rig)}
            flap_end = time.monotonic() + minutes * 60
            plugged = False
            while time.monotonic() < flap_end:
                if plugged:
                    camera.unplug()
                else:
                    camera.plug()
                plugged = not plugged
                step_end = time.monotonic() + FLAP_S
                while time.monotonic() < step_end:
                    raises.add(raised_at(rig))
                    time.sleep(0.5)
            raises.discard(None)
            messages = len(ours(robot))
            doc.update(
                flap_minutes=minutes,
                flap_raises=max(0, len(raises) - 1),
                flap_messages=messages,
                duplicates=max(0, messages - 1),
                refused=len(robot.refused),
                channels=rig.get("/notify/status"),
            )
    finally:
        camera.unplug()
        rig.stop()
    return doc


def main() -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--minutes", type=float, default=2.0, help="how long the camera flaps")
    args = parser.parse_args()
    doc = run(args.minutes)
    if args.json:
        print(json.dumps(doc, ensure_ascii=False))
        return
    for key, value in doc.items():
        if key != "channels":
            print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
