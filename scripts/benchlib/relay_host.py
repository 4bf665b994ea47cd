"""The controller's side of the built-in relay, alone in a process, for bench-capacity.

It runs ``RelayProcess`` exactly as the controller does (the relay worker is its child)
behind a tiny HTTP signalling front, so the bench can count this process's CPU (the
controller's share: signalling and the relay's figures every second) apart from the
relay worker's (the media plane's).
POST /answer {"lesson", "classroom", "sdp", "tracks": [TrackMid...]} → {"sdp"};
POST /close {"lesson"}; GET /pids → {"host", "relay"}; GET /ping.

With ``--controller-state``, the process is a whole controller instead (console, API over
HTTPS, orchestrator, agent hub, heartbeat writer), and the lessons go through that
controller's own relay process: bench-capacity times the console while the relay burns
its CPU beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib

from aiohttp import web

from controller.app.daemon import ControllerConfig, ControllerDaemon
from controller.relay.process import RelayProcess
from protocols.messages import TrackMid


async def main(port: int, state: pathlib.Path | None, http_port: int, control_port: int) -> None:
    """Serve until killed."""
    daemon: ControllerDaemon | None = None
    if state is None:
        process = RelayProcess(media_addresses=("127.0.0.1",))
    else:
        daemon = ControllerDaemon(
            ControllerConfig(
                state_dir=state,
                control_port=control_port,
                http_port=http_port,
                heartbeat_s=2.0,
                media_addresses=("127.0.0.1",),
            )
        )
        await daemon.start()
        assert daemon.relay is not None
        process = daemon.relay
    await process.start()

    async def answer(request: web.Request) -> web.Response:
        doc = await request.json()
        tracks = [TrackMid.model_validate(t) for t in doc["tracks"]]
        sdp = await process.open(doc["lesson"]).answer(doc["classroom"], doc["sdp"], tracks)
        return web.json_response({"sdp": sdp})

    async def close(request: web.Request) -> web.Response:
        doc = await request.json()
        await process.open(doc["lesson"]).close()
        return web.json_response({})

    async def pids(request: web.Request) -> web.Response:
        return web.json_response({"host": os.getpid(), "relay": process.pid})

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({"lessons": len(process._lessons)})

    app = web.Application()
    app.add_routes(
        [
            web.post("/answer", answer),
            web.post("/close", close),
            web.get("/pids", pids),
            web.get("/ping", ping),
        ]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()
    finally:
        if daemon is not None:
            await daemon.stop()
        else:
            await process.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True, help="the signalling front's port")
    parser.add_argument("--controller-state", type=pathlib.Path, help="run a whole controller")
    parser.add_argument("--http-port", type=int, default=0, help="the controller's HTTPS port")
    parser.add_argument("--control-port", type=int, default=0, help="the agent hub's port")
    a = parser.parse_args()
    asyncio.run(main(a.port, a.controller_state, a.http_port, a.control_port))
