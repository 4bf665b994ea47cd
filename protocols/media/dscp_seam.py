"""Per-packet DSCP marks on aiortc's media sockets: the one place that reaches into aioice.

aiortc bundles audio and video (and RTCP, DTLS, STUN) onto one ICE/UDP socket per peer
connection, so a socket-wide mark cannot tell them apart. Linux lets a UDP sender choose
the TOS byte per datagram with an ``IP_TOS`` (IPv6: ``IPV6_TCLASS``) ancillary message
on ``sendmsg``; this module uses that:

* the socket's own mark (``setsockopt``) is set to ``default_tos`` (the video mark), so
  STUN, DTLS and anything that takes the ordinary path carry it;
* each aioice host ``StunProtocol``'s ``send_data`` (through which every DTLS/SRTP/SRTCP
  datagram leaves) is wrapped: a classifier maps the datagram to a TOS byte (SRTP keeps
  the RTP header, hence the SSRC, in the clear), and a datagram whose TOS differs from
  the default is sent with ``sendmsg`` and an ancillary TOS; the rest go the usual way.

The socket is reached through public asyncio API (``get_extra_info("socket").dup()``); the
private parts are aiortc's ``RTCIceTransport._connection`` and aioice's
``Connection._protocols``. If asyncio holds datagrams in its write buffer (the socket said
EAGAIN), a marked datagram joins the queue through the ordinary path instead, keeping the
order but leaving with the default mark; ``DscpStats.fallback`` counts those.

TURN relay candidates are not marked per packet (their datagrams are wrapped for the
TURN server by aioice); they are listed in ``DscpMarking.skipped``.

``tests/edge_agent/network/test_dscp_seam.py`` pins the internals, and
``tests/edge_agent/network/test_dscp.py`` checks the marks on the wire.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import aioice.ice
from aiortc import RTCPeerConnection

from protocols.media.aiortc_seam import SeamBroken

# data -> TOS byte for this datagram, or None for "the socket's default".
TosChooser = Callable[[bytes], int | None]

_HOOKED: Final = "_classbridge_dscp_hooked"
_INT: Final = struct.Struct("i")


@dataclass
class DscpStats:
    """Datagrams sent through hooked sockets, by how they left."""

    marked: int = 0  # sent with their own ancillary TOS
    default: int = 0  # left with the socket's mark, as chosen
    fallback: int = 0  # wanted their own TOS but took the ordinary path (buffer busy, error)


@dataclass
class DscpMarking:
    """What :func:`install_dscp_marking` hooked, and counters of what was sent since."""

    sockets: list[str] = field(default_factory=list)  # "127.0.0.1:40123" per hooked socket
    skipped: list[str] = field(default_factory=list)  # why a socket was not hooked
    stats: DscpStats = field(default_factory=DscpStats)
    _handles: list[socket.socket] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Close this module's socket handles (each also closes when its transport does)."""
        for sock in self._handles:
            sock.close()
        self._handles.clear()


def tos_option(family: int) -> tuple[int, int]:
    """(level, option) that sets the TOS / traffic class for a socket family."""
    if family == socket.AF_INET6:
        return socket.IPPROTO_IPV6, socket.IPV6_TCLASS
    return socket.IPPROTO_IP, socket.IP_TOS


def ice_connections(pc: RTCPeerConnection) -> list[aioice.ice.Connection]:
    """The aioice connections under the peer connection's transports (one when bundled)."""
    ice_transports: list[Any] = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if dtls is not None:
            ice_transports.append(dtls.transport)
    if pc.sctp is not None:
        ice_transports.append(pc.sctp.transport.transport)
    connections: list[aioice.ice.Connection] = []
    for ice in ice_transports:
        conn = getattr(ice, "_connection", None)
        if not isinstance(conn, aioice.ice.Connection):
            raise SeamBroken("RTCIceTransport._connection is not an aioice Connection")
        if all(conn is not c for c in connections):
            connections.append(conn)
    return connections


def stun_protocols(conn: aioice.ice.Connection) -> list[aioice.ice.StunProtocol]:
    """The connection's UDP protocols (host, and TURN relay ones), after gathering."""
    protocols = getattr(conn, "_protocols", None)
    if not isinstance(protocols, list):
        raise SeamBroken("aioice Connection._protocols is not a list")
    for p in protocols:
        if not isinstance(p, aioice.ice.StunProtocol) or not callable(
            getattr(p, "send_data", None)
        ):
            raise SeamBroken(f"aioice protocol {p!r} is not a StunProtocol with send_data")
    return list(protocols)


def _hook(
    protocol: aioice.ice.StunProtocol,
    choose: TosChooser,
    default_tos: int,
    marking: DscpMarking,
) -> str:
    """Wrap one host protocol's ``send_data``; returns its local address."""
    transport = protocol.transport
    sock = transport.get_extra_info("socket").dup()  # same kernel socket, our own handle
    marking._handles.append(sock)
    level, option = tos_option(sock.family)
    sock.setsockopt(level, option, default_tos)
    ancillary: dict[int, list[tuple[int, int, bytes]]] = {}
    buffered: Callable[[], int] = transport.get_write_buffer_size  # type: ignore[attr-defined]
    original_send = protocol.send_data
    original_lost = protocol.connection_lost
    stats = marking.stats

    async def send_data(data: bytes, addr: tuple[str, int]) -> None:
        tos = choose(data)
        if tos is None or tos == default_tos:
            stats.default += 1
            await original_send(data, addr)
            return
        if transport.is_closing() or buffered():
            stats.fallback += 1
            await original_send(data, addr)  # keep the order behind what asyncio holds
            return
        cmsg = ancillary.get(tos)
        if cmsg is None:
            cmsg = ancillary[tos] = [(level, option, _INT.pack(tos))]
        try:
            sock.sendmsg([data], cmsg, 0, addr)
        except OSError:  # EAGAIN and real errors: asyncio queues or reports them as usual
            stats.fallback += 1
            await original_send(data, addr)
            return
        stats.marked += 1

    def connection_lost(exc: Exception | None) -> None:
        sock.close()
        original_lost(exc)

    protocol.send_data = send_data  # type: ignore[method-assign]
    protocol.connection_lost = connection_lost  # type: ignore[method-assign]
    setattr(protocol, _HOOKED, True)
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def install_dscp_marking(
    pc: RTCPeerConnection, choose: TosChooser, *, default_tos: int
) -> DscpMarking:
    """Mark every datagram the peer connection sends: ``choose(data)`` or ``default_tos``.

    Call after ``setLocalDescription`` (ICE gathering creates the sockets), before or after
    the connection is up; calling again hooks only sockets not hooked yet. TOS bytes are
    ``dscp << 2``. Raises :class:`SeamBroken` if aiortc/aioice internals moved.
    """
    if not 0 <= default_tos <= 255:
        raise ValueError(f"default_tos {default_tos} is not a TOS byte (0–255)")
    marking = DscpMarking()
    for conn in ice_connections(pc):
        for protocol in stun_protocols(conn):
            candidate = getattr(protocol, "local_candidate", None)
            where = f"{candidate.host}:{candidate.port}" if candidate else repr(protocol)
            if getattr(protocol, _HOOKED, False):
                marking.skipped.append(f"{where}: already marked")
            elif candidate is None or candidate.type != "host":
                kind = candidate.type if candidate else "unknown"
                marking.skipped.append(f"{where}: {kind} candidate, not marked per packet")
            elif protocol.transport.get_extra_info("socket") is None:
                marking.skipped.append(f"{where}: its transport exposes no socket")
            elif not callable(getattr(protocol.transport, "get_write_buffer_size", None)):
                marking.skipped.append(f"{where}: its transport has no get_write_buffer_size")
            else:
                marking.sockets.append(_hook(protocol, choose, default_tos, marking))
    if not marking.sockets and not marking.skipped:
        marking.skipped.append("no UDP sockets yet: call after setLocalDescription()")
    return marking
