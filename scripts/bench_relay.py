"""bench-relay: the controller relay's CPU per forwarded stream-second, against Janus.

One publisher sends 720p30 H.264 at 2 Mbps (the agent's own capture → encode-once path)
to the relay under test; 1, 4 and 8 subscribers receive it. The relay process's CPU time
over a fixed window, divided by subscribers × seconds, is the figure. Subscriber 0 decodes
and reads the burned-in capture time for glass-to-glass latency; the rest count frames.
Janus (Debian's janus, VideoRoom) runs the same load in the same run as the reference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import subprocess
import sys
import time
from typing import Any

import aiohttp
import numpy as np
import psutil
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchlib.janus import JanusServer, JanusVideoRoom
from benchlib.ports import free_port_pair

from edge_agent.devices.synthetic import SyntheticCamera
from edge_agent.media import barcode
from edge_agent.media.bus import FrameBus
from edge_agent.media.counters import percentile
from edge_agent.media.encoders import VideoEncoder
from edge_agent.media.source_runner import SourceRunner
from edge_agent.media.tracks import EncodedTrack
from protocols.media import aiortc_seam
from protocols.media.rtc_config import peer_configuration

FANOUTS = (1, 4, 8)
WIDTH, HEIGHT, FPS, BITRATE = 1280, 720, 30, 2_000_000


def h264_codecs() -> list[Any]:
    """H.264 (and its RTX) only."""
    return [
        c
        for c in RTCRtpSender.getCapabilities("video").codecs
        if c.mimeType.lower() in ("video/h264", "video/rtx")
    ]


class Subscriber:
    """One receiving peer; the first one decodes and measures latency."""

    def __init__(self, decode: bool) -> None:
        self.pc = RTCPeerConnection(peer_configuration())
        self.decode = decode
        self.frames = 0
        self.latencies: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def tap(self, kind: str, frame: object) -> None:
        """Count each encoded frame that arrives."""
        self.frames += 1

    def prepare(self, transceiver: Any) -> None:
        """Tap the receiver (decode only on the measuring subscriber)."""
        aiortc_seam.tap_receiver(transceiver.receiver, self.tap, decode=self.decode)
        aiortc_seam.release_on_marker(transceiver.receiver)

    def start_consumer(self, track: MediaStreamTrack) -> None:
        """Read decoded frames' burned-in capture times."""
        if self.decode:
            self._task = asyncio.create_task(self._consume(track))

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                plane = frame.planes[0]  # type: ignore[attr-defined]
                rows = min(plane.height, 64)
                luma = np.frombuffer(plane, np.uint8, count=rows * plane.line_size)
                stamp = barcode.read(luma.reshape(rows, plane.line_size)[:, : plane.width])
                if stamp is not None:
                    self.latencies.append(time.time() * 1000 - stamp[1])
        except MediaStreamError:
            pass

    async def close(self) -> None:
        """Stop consuming and close the peer connection."""
        if self._task is not None:
            self._task.cancel()
        await self.pc.close()


class Publisher:
    """The agent's synthetic teacher camera, encoded once, sent pre-encoded."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.bus = FrameBus("teacher", "video")
        self.runner = SourceRunner(
            "teacher",
            "video",
            SyntheticCamera(WIDTH, HEIGHT, FPS, "bench"),
            VideoEncoder(WIDTH, HEIGHT, FPS, BITRATE, preset="ultrafast"),
            FPS,
            self.bus,
            loop,
            WIDTH,
            HEIGHT,
        )
        self.pc = RTCPeerConnection(peer_configuration())
        track = EncodedTrack(self.bus, self.runner.request_keyframe)
        self.transceiver = self.pc.addTransceiver(track, direction="sendonly")
        self.transceiver.setCodecPreferences(h264_codecs())
        aiortc_seam.use_packer(self.transceiver.sender)
        aiortc_seam.on_keyframe_request(self.transceiver.sender, track.request_keyframe)

    async def close(self) -> None:
        """Stop the camera and close."""
        self.runner.stop()
        await self.pc.close()


async def measure(pid: int, subscribers: list[Subscriber], seconds: float) -> dict[str, Any]:
    """Relay CPU over the window, and what the subscribers received in it."""
    proc = psutil.Process(pid)
    await asyncio.sleep(2.0)  # let keyframes and bitrate settle
    frames0 = [s.frames for s in subscribers]
    for s in subscribers:
        s.latencies.clear()
    cpu0 = sum(proc.cpu_times()[:2])
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    elapsed = time.monotonic() - t0
    frames = [s.frames - f for s, f in zip(subscribers, frames0, strict=True)]
    lat = subscribers[0].latencies
    return {
        "cpu_ms_per_stream_s": round(cpu * 1000 / (len(subscribers) * elapsed), 3),
        "relay_cpu_pct": round(cpu * 100 / elapsed, 1),
        "fps_min": round(min(frames) / elapsed, 1),
        "latency_p50_ms": percentile(lat, 50),
        "latency_p95_ms": percentile(lat, 95),
    }


async def run_ours(fanout: int, seconds: float) -> dict[str, Any]:
    """Our relay in its own process."""
    port = free_port_pair()
    server = subprocess.Popen(
        [
            sys.executable,
            str(pathlib.Path(__file__).parent / "benchlib" / "relay_server.py"),
            "--port",
            str(port),
        ]
    )
    url = f"http://127.0.0.1:{port}/answer"
    publisher = Publisher()
    subs = [Subscriber(decode=i == 0) for i in range(fanout)]
    try:
        async with aiohttp.ClientSession() as http:

            async def answer(
                classroom: str, pc: RTCPeerConnection, transceiver: Any, direction: str
            ) -> None:
                await pc.setLocalDescription(await pc.createOffer())
                tracks = [
                    {
                        "mid": transceiver.mid,
                        "track": "teacher",
                        "kind": "video",
                        "direction": direction,
                        "source_classroom": "lead",
                    }
                ]
                for _ in range(50):
                    try:
                        async with http.post(
                            url,
                            json={
                                "classroom": classroom,
                                "sdp": pc.localDescription.sdp,
                                "tracks": tracks,
                            },
                        ) as resp:
                            doc = await resp.json()
                        break
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.1)
                await pc.setRemoteDescription(RTCSessionDescription(doc["sdp"], "answer"))

            publisher.runner.start()
            await answer("lead", publisher.pc, publisher.transceiver, "send")
            for i, sub in enumerate(subs):
                t = sub.pc.addTransceiver("video", direction="recvonly")
                t.setCodecPreferences(h264_codecs())
                sub.prepare(t)
                await answer(f"sub{i}", sub.pc, t, "recv")
                sub.start_consumer(t.receiver.track)
            return await measure(server.pid, subs, seconds)
    finally:
        await asyncio.gather(publisher.close(), *(s.close() for s in subs))
        server.terminate()
        server.wait(timeout=10)


async def run_janus(janus: JanusServer, fanout: int, seconds: float) -> dict[str, Any]:
    """The same load through Janus's VideoRoom."""
    room_id = 1000 + fanout
    client = JanusVideoRoom(janus.url)
    await client.start()
    publisher = Publisher()
    subs = [Subscriber(decode=i == 0) for i in range(fanout)]
    try:
        await client.create_room(room_id, BITRATE)
        publisher.runner.start()
        feed = await client.publish(room_id, publisher.pc, "teacher")
        for sub in subs:
            sub.pc.on("track", lambda track, sub=sub: sub.start_consumer(track))
            # Janus offers to subscribers: tap the receiver before aiortc starts it.
            await _subscribe_tapped(client, room_id, feed, sub)
        return await measure(janus.pid, subs, seconds)
    finally:
        await asyncio.gather(publisher.close(), *(s.close() for s in subs))
        await client.stop()


async def _subscribe_tapped(client: JanusVideoRoom, room: int, feed: int, sub: Subscriber) -> None:
    original = sub.pc.setRemoteDescription

    async def set_remote(desc: RTCSessionDescription) -> None:
        await original(desc)
        for t in sub.pc.getTransceivers():
            if t.kind == "video":
                sub.prepare(t)

    sub.pc.setRemoteDescription = set_remote  # type: ignore[method-assign]
    await client.subscribe(room, feed, sub.pc)


async def bench(seconds: float, with_janus: bool) -> dict[str, Any]:
    """Every fan-out through ours, then through Janus."""
    aiortc_seam.pin_host_addresses(["127.0.0.1"])
    results: dict[str, Any] = {"ours": {}, "janus": {}, "detail": {"ours": {}, "janus": {}}}
    for n in FANOUTS:
        r = await run_ours(n, seconds)
        results["ours"][str(n)] = r["cpu_ms_per_stream_s"]
        results["detail"]["ours"][str(n)] = r
        print(f"ours  x{n}: {r}", flush=True)
    if with_janus:
        janus = JanusServer()
        await janus.start()
        aiortc_seam.pin_host_addresses([janus.host_address])
        try:
            for n in FANOUTS:
                r = await run_janus(janus, n, seconds)
                results["janus"][str(n)] = r["cpu_ms_per_stream_s"]
                results["detail"]["janus"][str(n)] = r
                print(f"janus x{n}: {r}", flush=True)
        finally:
            await janus.stop()
    ours_lat = results["detail"]["ours"]["1"]["latency_p50_ms"]
    janus_lat = results["detail"]["janus"].get("1", {}).get("latency_p50_ms")
    results["latency_ms"] = {"ours": ours_lat, "janus": janus_lat}
    if with_janus:
        results["ratio_vs_janus"] = {
            n: round(results["ours"][n] / results["janus"][n], 2) if results["janus"][n] else None
            for n in results["ours"]
        }
    return results


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per run")
    parser.add_argument("--json", action="store_true", help="print one JSON line at the end")
    parser.add_argument("--no-janus", action="store_true", help="skip the Janus reference")
    args = parser.parse_args()
    results = asyncio.run(bench(args.seconds, not args.no_janus))
    print("\nCPU ms per forwarded stream-second (720p30, 2 Mbps):")
    print(f"  {'receivers':<10} {'ours':>8} {'janus':>8} {'ratio':>7}")
    for n in results["ours"]:
        j = results["janus"].get(n)
        ratio = results.get("ratio_vs_janus", {}).get(n)
        print(
            f"  {n:<10} {results['ours'][n]:>8} {j if j is not None else '-':>8} "
            f"{ratio if ratio is not None else '-':>7}"
        )
    print(
        f"glass-to-glass p50 through the relay: ours {results['latency_ms']['ours']} ms, "
        f"janus {results['latency_ms']['janus']} ms"
    )
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
