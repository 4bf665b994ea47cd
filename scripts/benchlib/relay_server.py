"""Our relay on its own in a process, with a tiny HTTP signalling front, for benchmarks.

POST /answer {"classroom": ..., "sdp": ..., "tracks": [TrackMid...]} → {"sdp": answer}
It runs exactly the controller's LessonRelay; only the signalling transport differs.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from controller.relay.room import LessonRelay
from protocols.media import aiortc_seam
from protocols.messages import TrackMid


async def main(port: int) -> None:
    """Serve until killed."""
    aiortc_seam.pin_host_addresses(["127.0.0.1"])
    relay = LessonRelay("bench")

    async def answer(request: web.Request) -> web.Response:
        doc = await request.json()
        tracks = [TrackMid.model_validate(t) for t in doc["tracks"]]
        sdp = await relay.answer(doc["classroom"], doc["sdp"], tracks)
        return web.json_response({"sdp": sdp})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(relay.stats())

    app = web.Application()
    app.add_routes([web.post("/answer", answer), web.get("/stats", stats)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
