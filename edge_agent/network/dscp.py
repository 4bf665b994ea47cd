"""DSCP marks for the agent's media: audio EF, video AF41 (or what the profile names).

The marks are set per datagram on the one bundled ICE/UDP socket aiortc uses for audio
and video (see :mod:`protocols.media.dscp_seam` for how, and why per socket is not
enough). A datagram is classified by its SSRC, which SRTP and SRTCP leave in the clear:

* RTP: bytes 8–11; RTCP (second byte 192–223, RFC 5761): the sender SSRC, bytes 4–7;
* the SSRC's kind comes from the ``a=ssrc`` lines of the local SDP's ``m=audio`` and
  ``m=video`` sections (the video RTX SSRC and every receiver's RTCP SSRC are listed
  there too);
* STUN, DTLS and unknown SSRCs keep the socket's own mark, which is the video mark.

Call :func:`mark_peer_connection` after ``setLocalDescription``.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable
from typing import Final

from aiortc import RTCPeerConnection

from protocols.media import dscp_seam
from protocols.media.dscp_seam import DscpMarking
from protocols.network_profile import NetworkProfile

log = logging.getLogger(__name__)

_M_LINE: Final = re.compile(r"^m=(\w+) ")
_SSRC_LINE: Final = re.compile(r"^a=ssrc:(\d+) ")


def tos_byte(dscp: int) -> int:
    """The IPv4 TOS / IPv6 traffic-class byte for a DSCP code point (ECN bits zero)."""
    if not 0 <= dscp <= 63:
        raise ValueError(f"DSCP {dscp} is outside 0–63")
    return dscp << 2


def packet_ssrc(data: bytes) -> int | None:
    """The SSRC of an (S)RTP or (S)RTCP datagram; None for STUN, DTLS or anything else."""
    if len(data) < 8 or not 128 <= data[0] <= 191:  # RFC 7983: 128–191 is RTP/RTCP
        return None
    if 192 <= data[1] <= 223:  # RTCP packet types 192–223 (RFC 5761 demultiplexing)
        return int.from_bytes(data[4:8], "big")
    if len(data) < 12:
        return None
    return int.from_bytes(data[8:12], "big")


def ssrc_kinds(sdp: str) -> dict[int, str]:
    """``{ssrc: "audio" | "video"}`` from the ``a=ssrc`` lines of each media section."""
    kinds: dict[int, str] = {}
    kind: str | None = None
    for line in sdp.splitlines():
        if m := _M_LINE.match(line):
            kind = m[1]
        elif (m := _SSRC_LINE.match(line)) and kind in ("audio", "video"):
            kinds[int(m[1])] = kind
    return kinds


class MediaClassifier:
    """Maps an outgoing datagram to its TOS byte by the SSRC's kind in the local SDP.

    The SDP is re-read when an SSRC is not known (a renegotiation adds tracks); a stray
    SSRC that is still unknown afterwards is looked up again at most once per
    ``retry_s``, so it costs one SDP read a second, not one per packet.
    """

    def __init__(
        self,
        local_sdp: Callable[[], str | None],
        *,
        audio_tos: int,
        video_tos: int,
        retry_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._local_sdp = local_sdp
        self._tos_by_kind = {"audio": audio_tos, "video": video_tos}
        self._retry_s = retry_s
        self._clock = clock
        self._sdp: str | None = None
        self._tos: dict[int, int] = {}
        self._unknown: dict[int, float] = {}  # SSRC -> when it was last looked up
        self._reload()

    def _reload(self) -> None:
        sdp = self._local_sdp()
        if sdp is None or sdp == self._sdp:
            return
        self._sdp = sdp
        self._tos = {s: self._tos_by_kind[k] for s, k in ssrc_kinds(sdp).items()}
        self._unknown.clear()

    def __call__(self, data: bytes) -> int | None:
        """The TOS byte for ``data``, or None to leave it with the socket's mark."""
        ssrc = packet_ssrc(data)
        if ssrc is None:
            return None
        tos = self._tos.get(ssrc)
        if tos is None:
            now = self._clock()
            if now - self._unknown.get(ssrc, -self._retry_s) >= self._retry_s:
                self._reload()
                tos = self._tos.get(ssrc)
                if tos is None:
                    self._unknown[ssrc] = now
        return tos


def mark_socket(sock: socket.socket, dscp: int) -> None:
    """Mark every datagram a socket sends (``IP_TOS`` / ``IPV6_TCLASS``)."""
    level, option = dscp_seam.tos_option(sock.family)
    sock.setsockopt(level, option, tos_byte(dscp))


def mark_peer_connection(pc: RTCPeerConnection, profile: NetworkProfile) -> DscpMarking:
    """Mark the peer connection's audio with the profile's audio mark, the rest with video.

    Call after ``setLocalDescription``. Raises ``SeamBroken`` when aiortc internals moved;
    a marking that found no socket to hook is logged, not raised: marks are a courtesy to
    the network, never a reason to drop a lesson.
    """

    def local_sdp() -> str | None:
        description = pc.localDescription
        return description.sdp if description is not None else None

    video_tos = tos_byte(profile.dscp_video_value)
    classifier = MediaClassifier(
        local_sdp, audio_tos=tos_byte(profile.dscp_audio_value), video_tos=video_tos
    )
    marking = dscp_seam.install_dscp_marking(pc, classifier, default_tos=video_tos)
    if not marking.sockets:
        log.warning("DSCP marks not installed: %s", "; ".join(marking.skipped))
    else:
        log.info(
            "DSCP: audio %s, video %s on %s",
            profile.dscp_audio,
            profile.dscp_video,
            ", ".join(marking.sockets),
        )
    return marking
