"""bench-capacity's two media planes and the 1+1 lessons it runs through them.

A lesson is a lead classroom (720p30 camera at 2 Mbps, 720p10 panel at 1 Mbps, Opus mic)
and a receiving classroom (360p30 camera at 600 kbps, Opus mic); each receives the
other's streams. ``builtin``: the controller's ``RelayProcess`` (its relay worker is the
media plane) behind ``relay_host``. ``janus``: a namespaced Janus, rooms made by the
controller's ``MediaPlane`` in ``room_host``, classrooms signalling to Janus directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import secrets
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription

from benchlib.clip import Clip, StreamShape
from benchlib.janus import JanusServer, JanusVideoRoom
from benchlib.loadgen import (
    RawSender,
    RealSource,
    Tally,
    add_send,
    codecs,
    real_source,
    tap_light,
    tap_real,
)
from benchlib.ports import free_port_pair
from protocols.media import aiortc_seam
from protocols.media.rtc_config import peer_configuration

LEAD = (
    StreamShape("teacher", "video", 1280, 720, 30, 2_000_000),
    StreamShape("panel", "video", 1280, 720, 10, 1_000_000),
    StreamShape("mic", "audio"),
)
RECEIVER = (StreamShape("camera", "video", 640, 360, 30, 600_000), StreamShape("mic", "audio"))
HERE = pathlib.Path(__file__).resolve().parent


def stream_id(lesson: int, lead: bool, index: int) -> int:
    """A stream's id in stamps and tallies: unique across the run's lessons."""
    return lesson * 8 + (0 if lead else 4) + index


@dataclass
class Side:
    """One classroom's peer connections and what sends on them."""

    name: str
    shapes: tuple[StreamShape, ...]
    ids: list[int]
    pcs: list[RTCPeerConnection] = field(default_factory=list)
    senders: list[RawSender] = field(default_factory=list)
    reals: list[RealSource] = field(default_factory=list)


@dataclass
class Lesson:
    """A running 1+1 lesson."""

    index: int
    lead: Side
    receiver: Side
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def teacher(self) -> int:
        """The stream id of the lead's camera (its latency is the lesson's figure)."""
        return self.lead.ids[0]

    @property
    def streams(self) -> list[int]:
        """Every stream id of the lesson."""
        return self.lead.ids + self.receiver.ids

    async def close(self) -> None:
        """Stop sending and close every peer connection."""
        for side in (self.lead, self.receiver):
            await asyncio.gather(*(s.stop() for s in side.senders))
            for real in side.reals:
                real.runner.stop()
            await asyncio.gather(*(pc.close() for pc in side.pcs), return_exceptions=True)


class Gen:
    """Shared by the backends: the clips, the tally, and whether classrooms are real."""

    def __init__(self, clips: dict[tuple[bool, str], Clip], tally: Tally) -> None:
        self.clips, self.tally = clips, tally
        self.real = False

    def side(self, lesson: int, lead: bool) -> Side:
        """A classroom's streams and ids."""
        shapes = LEAD if lead else RECEIVER
        name = f"{'lead' if lead else 'recv'}{lesson}"
        return Side(name, shapes, [stream_id(lesson, lead, i) for i in range(len(shapes))])

    def add_sends(self, side: Side, pc: RTCPeerConnection) -> list[RTCRtpTransceiver]:
        """Send transceivers for every stream of ``side`` on ``pc``."""
        out = []
        for shape in side.shapes:
            real = real_source(f"{side.name}-{shape.name}", shape) if self.real else None
            if real is not None:
                side.reals.append(real)
            out.append(add_send(pc, shape.kind, real))
        return out

    def start_sends(self, side: Side, transceivers: list[RTCRtpTransceiver]) -> None:
        """Start the clips (or the real sources) once negotiated."""
        if self.real:
            for real in side.reals:
                real.runner.start()
            return
        for t, shape, sid in zip(transceivers, side.shapes, side.ids, strict=True):
            sender = RawSender(t, self.clips[(side.shapes is LEAD, shape.name)], sid, self.tally)
            side.senders.append(sender)
            sender.start()

    def tap(self, t: RTCRtpTransceiver, audio_stream: int) -> None:
        """Count what arrives on a receive transceiver."""
        if self.real:
            key = -1 - len(self.tally.received)
            self.tally.received[key] = 0

            def count() -> None:
                self.tally.received[key] += 1

            tap_real(t, count)
        else:
            tap_light(t, self.tally, audio_stream)


class Builtin:
    """The built-in relay: ``relay_host`` (controller side) and its relay worker."""

    name = "builtin"

    def __init__(self, gen: Gen) -> None:
        self.gen = gen
        self.port = free_port_pair()
        self.proc: subprocess.Popen[bytes] | None = None
        self.http: aiohttp.ClientSession | None = None
        self.controller_pid = 0
        self.media_pid = 0
        self.host_args: list[str] = []  # more relay_host options (a whole controller)
        self.ping_headers: dict[str, str] = {}
        self.ping_ssl: ssl.SSLContext | None = None

    @property
    def ping_url(self) -> str:
        """A page of the controller side, timed while the relay is loaded."""
        return f"http://127.0.0.1:{self.port}/ping"

    async def start(self) -> None:
        """Start the controller side and its relay worker."""
        aiortc_seam.pin_host_addresses(["127.0.0.1"])
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "relay_host.py"), "--port", str(self.port), *self.host_args]
        )
        self.http = aiohttp.ClientSession()
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.get(f"http://127.0.0.1:{self.port}/pids") as resp:
                    doc = await resp.json()
                if doc["relay"]:
                    self.controller_pid, self.media_pid = doc["host"], doc["relay"]
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError("relay_host did not start its relay worker")

    async def stop(self) -> None:
        """Stop both processes."""
        if self.http is not None:
            await self.http.close()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=15)

    async def _offer(
        self, lesson: str, side: Side, peer: Side, pc: RTCPeerConnection
    ) -> list[RTCRtpTransceiver]:
        sends = self.gen.add_sends(side, pc)
        recvs = []
        for shape in peer.shapes:
            t = pc.addTransceiver(shape.kind, direction="recvonly")
            t.setCodecPreferences(codecs(shape.kind))
            recvs.append(t)
        await pc.setLocalDescription(await pc.createOffer())
        tracks = [
            {
                "mid": t.mid,
                "track": s.name,
                "kind": s.kind,
                "direction": "send",
                "source_classroom": side.name,
            }
            for t, s in zip(sends, side.shapes, strict=True)
        ] + [
            {
                "mid": t.mid,
                "track": s.name,
                "kind": s.kind,
                "direction": "recv",
                "source_classroom": peer.name,
            }
            for t, s in zip(recvs, peer.shapes, strict=True)
        ]
        assert self.http is not None
        async with self.http.post(
            f"http://127.0.0.1:{self.port}/answer",
            json={
                "lesson": lesson,
                "classroom": side.name,
                "sdp": pc.localDescription.sdp,
                "tracks": tracks,
            },
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"relay answer failed: {resp.status} {await resp.text()}")
            doc = await resp.json()
        await pc.setRemoteDescription(RTCSessionDescription(doc["sdp"], "answer"))
        audio = [sid for s, sid in zip(peer.shapes, peer.ids, strict=True) if s.kind == "audio"]
        for t in recvs:
            self.gen.tap(t, audio[0])
        return sends

    async def open(self, index: int) -> Lesson:
        """A lesson with both classrooms connected and sending."""
        lesson = Lesson(index, self.gen.side(index, True), self.gen.side(index, False))
        for side, peer in ((lesson.lead, lesson.receiver), (lesson.receiver, lesson.lead)):
            pc = RTCPeerConnection(peer_configuration())
            side.pcs.append(pc)
            sends = await self._offer(f"L{index}", side, peer, pc)
            self.gen.start_sends(side, sends)
        return lesson

    async def close(self, lesson: Lesson) -> None:
        """End the lesson at the relay and close its classrooms."""
        await lesson.close()
        assert self.http is not None
        async with self.http.post(
            f"http://127.0.0.1:{self.port}/close", json={"lesson": f"L{lesson.index}"}
        ) as resp:
            await resp.read()


class Janus:
    """Janus in a namespace; rooms by the controller's media plane in ``room_host``."""

    name = "janus"

    def __init__(self, gen: Gen) -> None:
        self.gen = gen
        self.server = JanusServer(admin_secret=secrets.token_urlsafe(16))
        self.rooms: asyncio.subprocess.Process | None = None
        self.controller_pid = 0
        self.media_pid = 0
        self.ping_url = ""  # no controller page to time: the rooms' host is not one
        self.ping_headers: dict[str, str] = {}
        self.ping_ssl: ssl.SSLContext | None = None

    async def start(self) -> None:
        """Start Janus and the controller's media plane."""
        await self.server.start()
        aiortc_seam.pin_host_addresses([self.server.host_address])
        self.media_pid = self.server.pid
        assert self.server.admin_secret is not None
        self.rooms = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "room_host.py"),
            "--api",
            self.server.url,
            "--admin",
            self.server.admin_url,
            "--secret",
            self.server.admin_secret,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self.controller_pid = self.rooms.pid
        await self._line()

    async def _line(self, command: str | None = None) -> dict[str, Any]:
        assert self.rooms is not None and self.rooms.stdin and self.rooms.stdout
        if command is not None:
            self.rooms.stdin.write(command.encode() + b"\n")
            await self.rooms.stdin.drain()
        line = await asyncio.wait_for(self.rooms.stdout.readline(), 30)
        if not line:
            raise RuntimeError("room_host exited")
        doc: dict[str, Any] = json.loads(line)
        return doc

    async def stop(self) -> None:
        """Stop the media plane and Janus."""
        if self.rooms is not None and self.rooms.stdin is not None:
            self.rooms.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.rooms.wait(), 10)
            if self.rooms.returncode is None:
                self.rooms.kill()
                await self.rooms.wait()
        await self.server.stop()

    async def open(self, index: int) -> Lesson:
        """A lesson's room made by the controller; both classrooms publish and subscribe."""
        placed = await self._line(f"open L{index}")
        if placed.get("backend") != "janus":
            raise RuntimeError(f"lesson L{index} was not placed on Janus: {placed}")
        room, pin = int(placed["room"]), str(placed["pin"])
        lesson = Lesson(index, self.gen.side(index, True), self.gen.side(index, False))
        client = JanusVideoRoom(self.server.url)
        await client.start()
        lesson.extra["client"] = client
        feeds = {}
        for side in (lesson.lead, lesson.receiver):
            pc = RTCPeerConnection(peer_configuration())
            side.pcs.append(pc)
            sends = self.gen.add_sends(side, pc)
            feeds[side.name] = await client.publish(room, pc, side.name, pin)
            self.gen.start_sends(side, sends)
        for side, peer in ((lesson.lead, lesson.receiver), (lesson.receiver, lesson.lead)):
            pc = RTCPeerConnection(peer_configuration())
            side.pcs.append(pc)
            audio = [s for s, k in zip(peer.ids, peer.shapes, strict=True) if k.kind == "audio"]

            def tap(pc: RTCPeerConnection = pc, audio_id: int = audio[0]) -> None:
                for t in pc.getTransceivers():
                    self.gen.tap(t, audio_id)

            await client.subscribe(room, feeds[peer.name], pc, pin, on_offer=tap)
        return lesson

    async def close(self, lesson: Lesson) -> None:
        """Close the classrooms, then the controller destroys the room."""
        await lesson.close()
        await lesson.extra["client"].stop()
        await self._line(f"close L{lesson.index}")
