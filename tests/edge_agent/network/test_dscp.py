"""DSCP on the wire: a real aiortc pair on loopback, audio must leave EF and video AF41.

The two peer connections talk through a small UDP proxy in the test: each side is given
the proxy's address as the other's only ICE candidate, and the proxy reads every
datagram with ``IP_RECVTOS``, so it sees the TOS byte the sender's kernel put on the
wire. No privileges needed. The proxy classifies the RTP packets itself, from the SSRCs
in the offer's ``m=audio``/``m=video`` sections, independently of the code under test.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from edge_agent.network.dscp import (
    MediaClassifier,
    mark_peer_connection,
    packet_ssrc,
    ssrc_kinds,
    tos_byte,
)
from protocols.media import aiortc_seam
from protocols.media.rtc_config import peer_configuration
from protocols.network_profile import load_network_profile_toml

pytestmark = pytest.mark.timeout(30)

EF, AF41 = 46 << 2, 34 << 2
PROFILE = load_network_profile_toml(
    """
name = "dscp-test"
subnet = "127.0.0.0/8"
classroom_cap_kbps = 3000
ladder = [{ name = "360p", width = 640, height = 360, kbps = 600 }]
""",
    "test",
)


class TosProxy:
    """Relays datagrams between two peers on loopback, recording the TOS of A's."""

    def __init__(self) -> None:
        self.facing_a = self._socket()  # A sends here; B's candidate as A sees it
        self.facing_b = self._socket()  # B sends here; A's candidate as B sees it
        self.a_addr: tuple[str, int] | None = None
        self.b_addr: tuple[str, int] | None = None
        self.from_a: list[tuple[int, bytes]] = []  # (TOS, datagram)

    @staticmethod
    def _socket() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        return sock

    def port(self, sock: socket.socket) -> int:
        return int(sock.getsockname()[1])

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.facing_a.fileno(), self._relay, self.facing_a)
        loop.add_reader(self.facing_b.fileno(), self._relay, self.facing_b)

    def _relay(self, sock: socket.socket) -> None:
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(4))
            except BlockingIOError:
                return
            if sock is self.facing_a:
                tos = next(d[0] for lvl, typ, d in ancillary if typ == socket.IP_TOS)
                self.from_a.append((tos, data))
                if self.b_addr:
                    self.facing_b.sendto(data, self.b_addr)
            elif self.a_addr:
                self.facing_a.sendto(data, self.a_addr)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in (self.facing_a, self.facing_b):
            loop.remove_reader(sock.fileno())
            sock.close()


def _candidate_port(sdp: str) -> int:
    ports = set(re.findall(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", sdp))
    assert len(ports) == 1, f"expected one (bundled) loopback host candidate in:\n{sdp}"
    return int(ports.pop())


def _via_proxy(sdp: str, port: int) -> str:
    """The SDP with its one host candidate (and default address) moved to ``port``."""
    old = _candidate_port(sdp)
    return re.sub(rf"(?<=[ :]){old}(?=\s)", str(port), sdp)


@pytest.fixture
def loopback_only() -> Iterator[None]:
    with aiortc_seam.host_addresses(["127.0.0.1"]):
        yield


def _kind_of(kinds: dict[int, str], data: bytes) -> str | None:
    """'audio'/'video' for an RTP (not RTCP) datagram of a known SSRC."""
    if packet_ssrc(data) is None or 192 <= data[1] <= 223:
        return None
    return kinds.get(packet_ssrc(data) or -1)


async def test_audio_leaves_ef_and_video_af41(loopback_only: None) -> None:
    proxy = TosProxy()
    proxy.start()
    a = RTCPeerConnection(peer_configuration())
    b = RTCPeerConnection(peer_configuration())
    marking = None
    try:
        a.addTrack(AudioStreamTrack())
        a.addTrack(VideoStreamTrack())
        await a.setLocalDescription(await a.createOffer())
        marking = mark_peer_connection(a, PROFILE)
        assert len(marking.sockets) == 1, marking

        offer = a.localDescription.sdp
        proxy.a_addr = ("127.0.0.1", _candidate_port(offer))
        await b.setRemoteDescription(
            RTCSessionDescription(_via_proxy(offer, proxy.port(proxy.facing_b)), "offer")
        )
        await b.setLocalDescription(await b.createAnswer())
        answer = b.localDescription.sdp
        proxy.b_addr = ("127.0.0.1", _candidate_port(answer))
        await a.setRemoteDescription(
            RTCSessionDescription(_via_proxy(answer, proxy.port(proxy.facing_a)), "answer")
        )

        kinds = ssrc_kinds(offer)
        assert sorted(set(kinds.values())) == ["audio", "video"], offer
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            seen = [_kind_of(kinds, d) for _, d in proxy.from_a]
            if seen.count("audio") >= 25 and seen.count("video") >= 25:
                break
            await asyncio.sleep(0.05)

        rtp = [(tos, k) for tos, d in proxy.from_a if (k := _kind_of(kinds, d))]
        audio = [tos for tos, k in rtp if k == "audio"]
        video = [tos for tos, k in rtp if k == "video"]
        assert len(audio) >= 25 and len(video) >= 25, (len(audio), len(video))
        assert set(audio) == {EF}, f"audio TOS bytes seen: {sorted(set(audio))}"
        assert set(video) == {AF41}, f"video TOS bytes seen: {sorted(set(video))}"
        # RTCP sender reports follow their stream's mark; STUN/DTLS keep the socket's.
        others = {tos for tos, d in proxy.from_a if packet_ssrc(d) is None}
        assert others == {AF41}, others
        assert marking.stats.marked >= len(audio) and marking.stats.fallback == 0
    finally:
        await a.close()
        await b.close()
        proxy.close()
        if marking is not None:
            marking.close()


def test_packet_ssrc_demultiplexes_rtp_rtcp_stun_dtls() -> None:
    rtp = bytes([0x80, 111, 0, 1, 0, 0, 0, 0]) + (0xDEADBEEF).to_bytes(4, "big") + b"x"
    rtcp_sr = bytes([0x80, 200, 0, 6]) + (0x01020304).to_bytes(4, "big") + bytes(20)
    srtp_with_csrc_and_ext = bytes([0x92, 0x60]) + bytes(6) + (7).to_bytes(4, "big")
    assert packet_ssrc(rtp) == 0xDEADBEEF
    assert packet_ssrc(rtcp_sr) == 0x01020304
    assert packet_ssrc(srtp_with_csrc_and_ext) == 7
    assert packet_ssrc(b"\x00\x01" + bytes(18)) is None  # STUN binding request
    assert packet_ssrc(b"\x16\xfe\xfd" + bytes(10)) is None  # DTLS handshake
    assert packet_ssrc(bytes([0x80, 111, 0, 1, 0, 0, 0, 0, 1])) is None  # too short


def test_classifier_follows_renegotiation() -> None:
    sdp = ["v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=ssrc:11 cname:x\r\n"]
    now = [0.0]
    reads = []

    def local_sdp() -> str:
        reads.append(now[0])
        return sdp[0]

    classifier = MediaClassifier(local_sdp, audio_tos=EF, video_tos=AF41, clock=lambda: now[0])

    def rtp(ssrc: int) -> bytes:
        return bytes([0x80, 96]) + bytes(6) + ssrc.to_bytes(4, "big")

    assert classifier(rtp(11)) == EF
    assert classifier(rtp(22)) is None
    sdp[0] += "m=video 9 UDP/TLS/RTP/SAVPF 97 98\r\na=ssrc:22 cname:x\r\na=ssrc:23 cname:x\r\n"
    assert classifier(rtp(22)) is None  # a stray SSRC is not looked up on every packet
    assert len(reads) == 2
    now[0] = 1.5
    assert classifier(rtp(22)) == AF41
    assert classifier(rtp(23)) == AF41
    assert tos_byte(46) == 0xB8 and tos_byte(34) == 0x88
    with pytest.raises(ValueError, match="outside 0–63"):
        tos_byte(64)
