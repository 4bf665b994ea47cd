"""Tripwire for the aiortc/aioice internals the DSCP seam uses, and its fallback paths.

If an aiortc or aioice upgrade moves ``RTCIceTransport._connection``,
``Connection._protocols`` or ``StunProtocol.send_data``/``connection_lost``, these tests
fail here, by name, rather than the marks silently disappearing from lessons.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Iterator

import aioice.ice
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from protocols.media import aiortc_seam, dscp_seam
from protocols.media.aiortc_seam import SeamBroken
from protocols.media.rtc_config import peer_configuration

pytestmark = pytest.mark.timeout(20)
EF, AF41 = 46 << 2, 34 << 2


@pytest.fixture
def loopback_only() -> Iterator[None]:
    with aiortc_seam.host_addresses(["127.0.0.1"]):
        yield


def test_aioice_protocol_surface_is_still_there() -> None:
    assert inspect.iscoroutinefunction(aioice.ice.StunProtocol.send_data)
    assert list(inspect.signature(aioice.ice.StunProtocol.send_data).parameters) == [
        "self",
        "data",
        "addr",
    ]
    assert callable(aioice.ice.StunProtocol.connection_lost)


async def test_finds_the_bundled_host_socket(loopback_only: None) -> None:
    pc = RTCPeerConnection(peer_configuration())
    try:
        pc.addTrack(AudioStreamTrack())
        before = dscp_seam.install_dscp_marking(pc, lambda d: None, default_tos=AF41)
        assert before.sockets == []
        assert before.skipped == ["no UDP sockets yet: call after setLocalDescription()"]

        await pc.setLocalDescription(await pc.createOffer())
        (conn,) = dscp_seam.ice_connections(pc)
        (protocol,) = dscp_seam.stun_protocols(conn)
        assert protocol.local_candidate.type == "host"
        sock = protocol.transport.get_extra_info("socket")
        assert sock.type == socket.SOCK_DGRAM

        marking = dscp_seam.install_dscp_marking(pc, lambda d: None, default_tos=AF41)
        assert marking.sockets == [f"127.0.0.1:{protocol.local_candidate.port}"]
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == AF41
        again = dscp_seam.install_dscp_marking(pc, lambda d: None, default_tos=AF41)
        assert again.sockets == [] and "already marked" in again.skipped[0]
    finally:
        await pc.close()
    assert all(h.fileno() == -1 for h in marking._handles), "handles close with the socket"


async def test_fails_loudly_when_internals_move(
    loopback_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pc = RTCPeerConnection(peer_configuration())
    try:
        pc.addTrack(AudioStreamTrack())
        await pc.setLocalDescription(await pc.createOffer())
        (conn,) = dscp_seam.ice_connections(pc)
        monkeypatch.setattr(conn, "_protocols", None)
        with pytest.raises(SeamBroken, match=r"Connection\._protocols"):
            dscp_seam.install_dscp_marking(pc, lambda d: None, default_tos=AF41)
        ice = pc.getTransceivers()[0].sender.transport.transport
        monkeypatch.delattr(ice, "_connection")
        with pytest.raises(SeamBroken, match=r"RTCIceTransport\._connection"):
            dscp_seam.install_dscp_marking(pc, lambda d: None, default_tos=AF41)
    finally:
        monkeypatch.undo()
        await pc.close()


class _Receiver:
    """The two calls a StunProtocol makes on its aioice Connection."""

    def protocol_lost(self, protocol: object) -> None:
        pass

    def data_received(self, data: bytes, component: int) -> None:
        pass


async def test_busy_write_buffer_falls_back_to_the_ordinary_path() -> None:
    loop = asyncio.get_running_loop()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(2)
    sink.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: aioice.ice.StunProtocol(_Receiver()),  # type: ignore[arg-type]
        local_addr=("127.0.0.1", 0),
    )
    protocol.local_candidate = aioice.Candidate("1", 1, "udp", 1, "127.0.0.1", 1, "host")
    marking = dscp_seam.DscpMarking()
    busy = [0]
    transport.get_write_buffer_size = lambda: busy[0]  # type: ignore[attr-defined]
    try:
        dscp_seam._hook(protocol, lambda d: EF if d == b"audio" else None, AF41, marking)
        target = sink.getsockname()

        def tos_of_next() -> int:
            _, ancillary, _, _ = sink.recvmsg(64, socket.CMSG_SPACE(4))
            return ancillary[0][2][0]

        await protocol.send_data(b"audio", target)
        assert tos_of_next() == EF
        await protocol.send_data(b"other", target)
        assert tos_of_next() == AF41

        busy[0] = 1200  # asyncio holds a datagram the socket would not take
        await protocol.send_data(b"audio", target)
        assert tos_of_next() == AF41  # queued behind asyncio's buffer, with the default mark
        assert (marking.stats.marked, marking.stats.default, marking.stats.fallback) == (1, 1, 1)
    finally:
        transport.close()
        await asyncio.sleep(0)
        sink.close()
        marking.close()
