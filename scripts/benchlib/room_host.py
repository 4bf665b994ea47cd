"""The controller's media plane (``controller.media_plane``) alone in a process, for
bench-capacity: it watches one Janus through the admin API and creates and destroys
lessons' VideoRooms as the controller does, so its CPU is the controller's Janus share.

Lines on stdin: ``open LESSON`` → a JSON line {"room", "pin"}; ``close LESSON`` → "{}".
Argument: --api URL --admin URL --secret SECRET.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from controller.media_plane.config import parse_config
from controller.media_plane.plane import MediaPlane


async def main(api: str, admin: str, secret: str) -> None:
    """Serve stdin's lines until it closes."""
    config = parse_config(
        {
            "media_plane": {"backend": "janus"},
            "janus": {
                "bench": {
                    "api_url": api,
                    "admin_url": admin,
                    "admin_secret": secret,
                    "capacity": 1000,
                }
            },
        }
    )
    plane = MediaPlane(config)
    await plane.start()
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": True}), flush=True)
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            op, _, lesson = line.strip().partition(" ")
            if op == "open":
                p = await plane.rooms.open(lesson)
                print(json.dumps({"room": p.room, "pin": p.pin, "backend": p.backend}), flush=True)
            elif op == "close":
                await plane.rooms.close(lesson)
                print("{}", flush=True)
    finally:
        await plane.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", required=True)
    parser.add_argument("--admin", required=True)
    parser.add_argument("--secret", required=True)
    a = parser.parse_args()
    asyncio.run(main(a.api, a.admin, a.secret))
