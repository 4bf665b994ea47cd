"""The aiortc seam: pinned internals, and a relay path that never decodes or encodes.

These tests are the tripwire for aiortc upgrades: if a newer aiortc renames the internals
the seam relies on, they fail here rather than in a lesson.
"""

from __future__ import annotations

import asyncio
import fractions
import pathlib
import queue
import socket
from collections.abc import Iterator
from typing import Any

import aioice.ice
import aioice.turn
import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from controller.relay.room import LessonRelay
from protocols.media import aiortc_seam
from protocols.media.h264 import is_keyframe, split_nal_units
from protocols.media.rtc_config import peer_configuration
from protocols.messages import TrackMid

pytestmark = pytest.mark.timeout(60)
CLOCK = fractions.Fraction(1, 90000)


def encode_clip(frames: int = 90, width: int = 320, height: int = 240) -> list[bytes]:
    """Annex-B access units of a short moving clip (encoded before any test counts)."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 30)
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "g": "30", "bf": "0"}
    out = []
    for i in range(frames):
        img = np.full((height * 3 // 2, width), 16 + (i * 7) % 200, np.uint8)
        img[:height, (i * 5) % width] = 235
        frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
        frame.pts = i
        out += [bytes(p) for p in ctx.encode(frame)]
    out += [bytes(p) for p in ctx.encode(None)]
    return out


class ClipTrack(MediaStreamTrack):
    """Plays pre-encoded access units as packets at 30 fps, looping."""

    kind = "video"

    def __init__(self, units: list[bytes]) -> None:
        super().__init__()
        self._units = units
        self._i = 0
        self.keyframe_requests = 0

    async def recv(self) -> av.Packet:  # type: ignore[override]
        await asyncio.sleep(1 / 30)
        data = self._units[self._i % len(self._units)]
        packet = av.Packet(data)
        packet.pts = self._i * 3000
        packet.time_base = CLOCK
        self._i += 1
        return packet


@pytest.fixture
def loopback_ice() -> Iterator[None]:
    """ICE on 127.0.0.1 only (aioice skips loopback by default)."""
    with aiortc_seam.host_addresses(["127.0.0.1"]):
        yield


async def test_pinned_internals_exist() -> None:
    """Fails when an aiortc upgrade moves what the seam depends on."""
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video", direction="recvonly")
        receiver, sender = transceiver.receiver, transceiver.sender
        assert isinstance(getattr(receiver, aiortc_seam._DECODER_QUEUE), queue.Queue)
        assert getattr(receiver, aiortc_seam._DECODER_THREAD) is None
        assert callable(receiver._send_rtcp_pli)
        assert hasattr(sender, aiortc_seam._SENDER_ENCODER)
        assert callable(sender._send_keyframe)
        assert callable(aioice.ice.get_host_addresses)
    finally:
        await pc.close()


async def test_tap_refuses_a_started_receiver() -> None:
    pc = RTCPeerConnection()
    receiver = pc.addTransceiver("video").receiver
    setattr(receiver, aiortc_seam._DECODER_THREAD, object())
    with pytest.raises(aiortc_seam.SeamBroken, match="after the receiver started"):
        aiortc_seam.tap_receiver(receiver, lambda k, f: None, decode=False)
    setattr(receiver, aiortc_seam._DECODER_THREAD, None)
    await pc.close()


def test_host_addresses_hook_restores() -> None:
    original = aioice.ice.get_host_addresses
    with aiortc_seam.host_addresses(["127.0.0.1", "::1"]):
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(False, True) == ["::1"]
    assert aioice.ice.get_host_addresses is original


async def test_ice_sockets_get_the_media_receive_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lesson's opening keyframes overflowed the default buffer; every ICE socket asks
    for 4 MiB and gets what net.core.rmem_max allows."""
    monkeypatch.setattr(aioice.turn, "UDP_SOCKET_BUFFER_SIZE", aioice.turn.UDP_SOCKET_BUFFER_SIZE)
    with aiortc_seam.host_addresses(["127.0.0.1"]):
        aiortc_seam.size_receive_buffers()
        connection = aioice.ice.Connection(ice_controlling=True)
        await connection.gather_candidates()
    try:
        [protocol] = connection._protocols
        sock = protocol.transport.get_extra_info("socket")
        cap = int(pathlib.Path("/proc/sys/net/core/rmem_max").read_text())
        wanted = min(aiortc_seam.MEDIA_RECEIVE_BUFFER, cap)
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
        assert granted == wanted
    finally:
        await connection.close()


def _h264(kind: str = "video") -> list[Any]:
    return [
        c
        for c in RTCRtpSender.getCapabilities(kind).codecs
        if c.mimeType.lower() in ("video/h264", "video/rtx")
    ]


async def test_relay_forwards_encoded_frames_without_coding(
    loopback_ice: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    units = encode_clip()
    calls: list[str] = []
    real_create = av.CodecContext.create

    def spy_create(*args: Any, **kwargs: Any) -> Any:
        calls.append(f"CodecContext.create{args}")
        return real_create(*args, **kwargs)

    def no_codec(*args: Any, **kwargs: Any) -> Any:
        calls.append(f"codec factory{args}")
        raise AssertionError("a codec was built on the relay path")

    monkeypatch.setattr(av.CodecContext, "create", spy_create)
    monkeypatch.setattr("aiortc.rtcrtpreceiver.get_decoder", no_codec)
    monkeypatch.setattr("aiortc.rtcrtpsender.get_encoder", no_codec)

    relay = LessonRelay("L1")
    publisher = RTCPeerConnection(peer_configuration())
    subscriber = RTCPeerConnection(peer_configuration())
    clip = ClipTrack(units)
    keyframe_requests: list[int] = []
    received: list[bytes] = []
    try:
        t = publisher.addTransceiver(clip, direction="sendonly")
        t.setCodecPreferences(_h264())
        aiortc_seam.use_packer(t.sender)
        aiortc_seam.on_keyframe_request(t.sender, lambda: keyframe_requests.append(1))
        await publisher.setLocalDescription(await publisher.createOffer())
        answer = await relay.answer(
            "lead",
            publisher.localDescription.sdp,
            [
                TrackMid(
                    mid=t.mid or "",
                    track="teacher",
                    kind="video",
                    direction="send",
                    source_classroom="lead",
                )
            ],
        )
        await publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))

        s = subscriber.addTransceiver("video", direction="recvonly")
        s.setCodecPreferences(_h264())
        aiortc_seam.tap_receiver(s.receiver, lambda kind, f: received.append(f.data), decode=False)
        await subscriber.setLocalDescription(await subscriber.createOffer())
        answer = await relay.answer(
            "receiver",
            subscriber.localDescription.sdp,
            [
                TrackMid(
                    mid=s.mid or "",
                    track="teacher",
                    kind="video",
                    direction="recv",
                    source_classroom="lead",
                )
            ],
        )
        await subscriber.setRemoteDescription(RTCSessionDescription(answer, "answer"))

        for _ in range(100):
            if len(received) >= 40:
                break
            await asyncio.sleep(0.1)
        assert len(received) >= 40, f"only {len(received)} frames relayed"
        # the first frame a new subscriber gets is a keyframe, and NAL units pass unchanged
        # (RTP depayloading normalises start codes, so compare the units themselves)
        assert is_keyframe(received[0])
        published = {tuple(split_nal_units(u)) for u in units}
        assert all(tuple(split_nal_units(f)) in published for f in received)

        # a subscriber's PLI travels through the relay to the publisher
        before = len(keyframe_requests)
        await asyncio.sleep(0.4)  # outside the relay's keyframe-request rate limit
        assert aiortc_seam.request_keyframe(s.receiver)
        for _ in range(50):
            if len(keyframe_requests) > before:
                break
            await asyncio.sleep(0.05)
        assert len(keyframe_requests) > before, "PLI did not reach the publisher"
    finally:
        await publisher.close()
        await subscriber.close()
        await relay.close()
    assert calls == [], f"codec work on the relay path: {calls}"


def _rtp(seq: int, ts: int, marker: bool, data: bytes) -> Any:
    from aiortc.rtp import RtpPacket

    packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts)
    packet.marker = int(marker)
    packet._data = data  # type: ignore[attr-defined]
    return packet


def test_marker_jitter_buffer_releases_complete_frames_at_once() -> None:
    jb = aiortc_seam.MarkerJitterBuffer(capacity=128, is_video=True)
    assert jb.add(_rtp(10, 3000, False, b"a"))[1] is None
    frame = jb.add(_rtp(11, 3000, True, b"b"))[1]
    assert frame is not None and frame.data == b"ab" and frame.timestamp == 3000
    # a single-packet frame comes out on its own packet, not one frame later
    frame = jb.add(_rtp(12, 6000, True, b"c"))[1]
    assert frame is not None and frame.data == b"c"


def test_marker_jitter_buffer_holds_a_frame_with_a_gap() -> None:
    jb = aiortc_seam.MarkerJitterBuffer(capacity=128, is_video=True)
    jb.add(_rtp(20, 3000, False, b"a"))
    assert jb.add(_rtp(22, 3000, True, b"c"))[1] is None  # 21 missing
    frame = jb.add(_rtp(21, 3000, False, b"b"))[1]  # the retransmission fills the gap
    assert frame is not None and frame.data == b"abc"
    frame = jb.add(_rtp(23, 6000, True, b"d"))[1]
    assert frame is not None and frame.data == b"d"


async def test_release_on_marker_replaces_the_buffer() -> None:
    pc = RTCPeerConnection()
    receiver = pc.addTransceiver("video").receiver
    aiortc_seam.release_on_marker(receiver)
    assert isinstance(getattr(receiver, aiortc_seam._JITTER_BUFFER), aiortc_seam.MarkerJitterBuffer)
    await pc.close()


async def test_audio_nacks_repeat_until_the_hole_is_filled(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiortc.rtp import RtpPacket

    monkeypatch.setattr(aiortc_seam, "AUDIO_NACK_REPEAT_S", 0.01)
    pc = RTCPeerConnection()
    receiver = pc.addTransceiver("audio").receiver
    aiortc_seam.release_on_marker(receiver)
    aiortc_seam.enable_audio_nack(receiver)
    buffer = getattr(receiver, aiortc_seam._JITTER_BUFFER)
    assert isinstance(buffer, aiortc_seam.MarkerJitterBuffer)
    assert buffer.capacity == aiortc_seam.AUDIO_JITTER_PACKETS
    sent: list[list[int]] = []

    async def record(ssrc: int, lost: list[int]) -> None:
        sent.append(lost)

    monkeypatch.setattr(receiver, "_send_rtcp_nack", record)
    nacks = getattr(receiver, aiortc_seam._NACK_GENERATOR)
    for seq in (1, 2, 4):  # 3 is lost
        nacks.add(RtpPacket(payload_type=111, sequence_number=seq, ssrc=7))
    await asyncio.sleep(0.05)
    assert len(sent) >= 2 and all(lost == [3] for lost in sent)  # asked again and again
    nacks.add(RtpPacket(payload_type=111, sequence_number=3, ssrc=7))  # the retransmission
    count = len(sent)
    await asyncio.sleep(0.05)
    assert len(sent) == count  # filled: no more NACKs
    await pc.close()


async def test_receiver_reports_about_the_sender_reach_the_callback() -> None:
    """Each receiver report about the sender's own stream, with the NACKs counted since."""
    from aiortc.rtp import RTCP_RTPFB_NACK, RtcpReceiverInfo, RtcpRrPacket, RtcpRtpfbPacket

    pc = RTCPeerConnection()
    try:
        sender = pc.addTransceiver("video", direction="sendonly").sender
        reports: list[aiortc_seam.ReceiverReport] = []
        aiortc_seam.on_receiver_report(sender, reports.append)

        def report(ssrc: int, fraction: int) -> RtcpRrPacket:
            info = RtcpReceiverInfo(
                ssrc=ssrc,
                fraction_lost=fraction,
                packets_lost=7,
                highest_sequence=100,
                jitter=90,
                lsr=0,
                dlsr=0,
            )
            return RtcpRrPacket(ssrc=1, reports=[info])

        nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=sender._ssrc)
        nack.lost = [5, 6, 9]
        await sender._handle_rtcp_packet(nack)
        await sender._handle_rtcp_packet(report(sender._ssrc + 1, 200))  # another stream's
        await sender._handle_rtcp_packet(report(sender._ssrc, 64))
        await sender._handle_rtcp_packet(report(sender._ssrc, 0))
        assert [(r.fraction_lost, r.nacked, r.packets_lost, r.jitter) for r in reports] == [
            (0.25, 3, 7, 90),
            (0.0, 0, 7, 90),
        ]
        # aiortc still handled the report itself: its statistics carry it.
        stats = [s for s in (await sender.getStats()).values() if s.type == "remote-inbound-rtp"]
        assert stats and stats[0].fractionLost == 0
    finally:
        await pc.close()


def test_receiver_report_hook_refuses_a_changed_sender() -> None:
    class NotASender:
        pass

    with pytest.raises(aiortc_seam.SeamBroken, match="_handle_rtcp_packet"):
        aiortc_seam.on_receiver_report(NotASender(), lambda r: None)  # type: ignore[arg-type]
