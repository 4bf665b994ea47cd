"""The light load generator: many classrooms' peers in one process, each sending a
pre-encoded clip's RTP packets and reading its peers' stamps without decoding.

aiortc negotiates ICE, DTLS and SRTP as a real agent's peer connection does; after that
the send path is ours: a sender's packets are built from the clip's payloads (a header
pack and a concatenation) and handed to aiortc's SRTP transport, skipping aiortc's
per-frame packetiser, and a receiver's RTP handler is replaced by one that counts frames
and reads the stamp (skipping aiortc's jitter buffer and depacketiser). The media plane
sees what an agent sends: the same SSRCs, payload types, header extensions, frame sizes
and pacing (a frame's packets in one burst at the frame rate).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from benchlib.clip import Clip, read_stamp, stamp_payload
from edge_agent.media.bus import FrameBus
from edge_agent.media.tracks import EncodedTrack
from protocols.media import aiortc_seam


def codecs(kind: str) -> list[Any]:
    """What the agent sends: H.264 (+RTX) or Opus."""
    wanted = ("video/h264", "video/rtx") if kind == "video" else ("audio/opus",)
    return [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType.lower() in wanted]


class SilentTrack(MediaStreamTrack):
    """A track that never yields: aiortc's own sender loop waits on it forever."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:
        """Never returns (until the peer connection closes and cancels the sender)."""
        return await self._never


@dataclass
class Tally:
    """What one run sent and received, by stream id."""

    sent: dict[int, int] = field(default_factory=dict)
    received: dict[int, int] = field(default_factory=dict)
    latency_ms: dict[int, list[float]] = field(default_factory=dict)
    lateness_ms: list[float] = field(default_factory=list)

    def snapshot(self) -> tuple[dict[int, int], dict[int, int]]:
        """Copies of the sent and received counters."""
        return dict(self.sent), dict(self.received)


class RawSender:
    """Sends a clip on a negotiated send transceiver, packet by packet, at its frame rate."""

    def __init__(self, transceiver: RTCRtpTransceiver, clip: Clip, stream: int, tally: Tally):
        self.transceiver, self.clip, self.stream, self.tally = transceiver, clip, stream, tally
        self._task: asyncio.Task[None] | None = None
        tally.sent[stream] = 0

    def start(self) -> None:
        """Start sending once the transport is up."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop sending."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _header(self) -> tuple[int, int, int, bytes]:
        t = self.transceiver
        pt = t._codecs[0].payloadType  # negotiated: the first is the one sent
        assert pt is not None
        ext_map = HeaderExtensionsMap()
        ext_map.configure(RTCRtpParameters(headerExtensions=t._headerExtensions))
        probe = RtpPacket(payload_type=pt)
        probe.extensions.mid = t.mid
        raw = probe.serialize(ext_map)
        return raw[0], pt, t.sender._ssrc, raw[12:]

    async def _run(self) -> None:
        dtls = self.transceiver.sender.transport
        while dtls.state != "connected":
            await asyncio.sleep(0.05)
        first, pt, ssrc, ext = self._header()
        video = self.clip.shape.kind == "video"
        frames, step = self.clip.frames, self.clip.rtp_step
        period = 1.0 / self.clip.shape.fps
        loop = asyncio.get_running_loop()
        seq, ts0, n = random.getrandbits(16), random.getrandbits(32), 0
        pack, send, tally, stream = struct.pack, dtls._send_rtp, self.tally, self.stream
        next_t = loop.time() + random.random() * period
        with contextlib.suppress(ConnectionError):
            while True:
                delay = next_t - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    # How late the loop woke: a busy generator (or machine) shows here.
                    tally.lateness_ms.append(max(0.0, loop.time() - next_t) * 1000)
                else:
                    tally.lateness_ms.append(-delay * 1000)
                frame = frames[n % len(frames)]
                ts = (ts0 + n * step) & 0xFFFFFFFF
                payloads: tuple[bytes, ...] = frame.payloads
                if video:
                    stamp = stamp_payload(stream, n, time.monotonic_ns() // 1000)
                    payloads = (stamp, *payloads)
                last = len(payloads) - 1
                for i, payload in enumerate(payloads):
                    marker = 0x80 if i == last else 0
                    await send(pack("!BBHII", first, marker | pt, seq, ts, ssrc) + ext + payload)
                    seq = (seq + 1) & 0xFFFF
                tally.sent[stream] = n + 1
                n += 1
                next_t += period


def tap_light(transceiver: RTCRtpTransceiver, tally: Tally, audio_stream: int) -> None:
    """Replace a receiver's RTP handling with counting: a video frame is delivered when its
    stamp and its marker packet both arrive; a sound packet when it arrives."""
    receiver = transceiver.receiver
    if transceiver.kind == "audio":
        tally.received.setdefault(audio_stream, 0)

        async def on_audio(packet: RtpPacket, arrival_time_ms: int) -> None:
            tally.received[audio_stream] = tally.received.get(audio_stream, 0) + 1

        receiver._handle_rtp_packet = on_audio  # type: ignore[method-assign]
        return
    current: list[tuple[int, int] | None] = [None]

    async def on_video(packet: RtpPacket, arrival_time_ms: int) -> None:
        stamp = read_stamp(packet.payload)
        if stamp is not None:
            current[0] = (stamp[0], stamp[2])
        if packet.marker and current[0] is not None:
            stream, sent_us = current[0]
            current[0] = None
            tally.received[stream] = tally.received.get(stream, 0) + 1
            lat = tally.latency_ms.get(stream)
            if lat is not None:
                lat.append((time.monotonic_ns() // 1000 - sent_us) / 1000)

    receiver._handle_rtp_packet = on_video  # type: ignore[method-assign]


@dataclass
class RealSource:
    """The agent's own publishing path for the real-agent check: synthetic capture,
    encoding per frame, EncodedTrack and aiortc's sender."""

    runner: Any
    track: EncodedTrack


def real_source(name: str, shape: Any) -> RealSource:
    """A synthetic camera or microphone encoded live, as the agent does."""
    from edge_agent.devices.synthetic import SyntheticCamera, SyntheticMicrophone
    from edge_agent.media.encoders import AudioEncoder, VideoEncoder
    from edge_agent.media.source_runner import SourceRunner

    loop = asyncio.get_running_loop()
    bus = FrameBus(name, shape.kind)
    if shape.kind == "video":
        runner = SourceRunner(
            name,
            "video",
            SyntheticCamera(shape.width, shape.height, shape.fps, name),
            VideoEncoder(shape.width, shape.height, shape.fps, shape.bitrate, preset="ultrafast"),
            shape.fps,
            bus,
            loop,
            shape.width,
            shape.height,
        )
    else:
        runner = SourceRunner(name, "audio", SyntheticMicrophone(), AudioEncoder(), 50.0, bus, loop)
    return RealSource(runner, EncodedTrack(bus, runner.request_keyframe))


def add_send(pc: RTCPeerConnection, kind: str, real: RealSource | None) -> RTCRtpTransceiver:
    """A send-only transceiver carrying the real source's track or a silent one."""
    track: MediaStreamTrack = real.track if real is not None else SilentTrack(kind)
    t = pc.addTransceiver(track, direction="sendonly")
    t.setCodecPreferences(codecs(kind))
    if real is not None:
        aiortc_seam.use_packer(t.sender)
        aiortc_seam.on_keyframe_request(t.sender, real.track.request_keyframe)
    return t


def tap_real(transceiver: RTCRtpTransceiver, count: Callable[[], None]) -> None:
    """The agent's own receive path (no decoding): aiortc's jitter buffer and the tap."""
    aiortc_seam.tap_receiver(transceiver.receiver, lambda kind, frame: count(), decode=False)
    aiortc_seam.release_on_marker(transceiver.receiver)
