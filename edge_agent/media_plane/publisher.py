"""Publish a classroom's encoded tracks to a lesson's VideoRoom, without re-encoding.

One publisher handle carries every local track as its own m-line (Janus 1.x multistream):
one ICE/DTLS transport per classroom, bundled as with the built-in relay, one feed that
subscribers find by classroom, and one offer/answer however many cameras a room has. A
handle per track would cost a transport and a feed each and gain nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from edge_agent.media.tracks import EncodedTrack
from edge_agent.media_plane.congestion import RateMeter, UplinkEstimator
from edge_agent.media_plane.exceptions import JanusProtocolError
from edge_agent.media_plane.feeds import FeedDirectory
from edge_agent.media_plane.janus_session import Event, JanusSession
from edge_agent.media_plane.videoroom import VideoRoomHandle
from edge_agent.network.dscp import mark_peer_connection
from edge_agent.sources import MediaSource
from protocols.media import aiortc_seam
from protocols.media.dscp_seam import DscpMarking
from protocols.media.rtc_config import peer_configuration
from protocols.messages import JanusPlacement
from protocols.network_profile import NetworkProfile

log = logging.getLogger(__name__)

EstimateSink = Callable[[str, int], None]
TrackFactory = Callable[[str], EncodedTrack]


def h264_opus_only(kind: str) -> list[object]:
    """The codecs a lesson sends: H.264 (with RTX) for video, Opus for audio."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    if kind != "video":
        return [c for c in caps if c.mimeType.lower() == "audio/opus"]
    return [c for c in caps if c.mimeType.lower() in ("video/h264", "video/rtx")]


class JanusPublisher:
    """A classroom in the room: joins as a publisher and sends the named local sources.

    Keyframe requests (PLI/FIR from Janus, which forwards its subscribers') reach the
    source's encoder; NACKs are answered from aiortc's packet history. Janus's REMB is
    only the room's cap, so each video track's estimate comes from Janus's receiver
    reports (``UplinkEstimator``), within that cap, to ``on_estimate(track, bps)``.
    """

    def __init__(
        self,
        session: JanusSession,
        placement: JanusPlacement,
        classroom_id: str,
        sources: dict[str, MediaSource],
        publish: list[str],
        *,
        on_estimate: EstimateSink | None = None,
        network: NetworkProfile | None = None,
        track_for: TrackFactory | None = None,
    ) -> None:
        self.session = session
        self.placement = placement
        self.classroom_id = classroom_id
        self._sources = sources
        self._publish = list(publish)
        self._on_estimate = on_estimate
        # Who makes each sent track: the lesson session, so that its frame counts carry
        # on across re-joins; by default a fresh track on the source's bus.
        self._track_for = track_for
        self.feeds = FeedDirectory()
        self.handle = VideoRoomHandle(session, self._on_event)
        self.pc: RTCPeerConnection | None = None
        self.sent: dict[str, EncodedTrack] = {}
        self.senders: dict[str, RTCRtpSender] = {}
        self.estimators: dict[str, UplinkEstimator] = {}
        self.feed_id: int | None = None
        self.hangup_reason: str | None = None
        # DSCP marks for the media socket (the network profile), as the session sets them.
        self.network = network
        self.marking: DscpMarking | None = None

    async def start(self) -> None:
        """Join the room with its PIN, then publish every track in one offer."""
        await self.handle.attach()
        joined = await self.handle.request(
            {
                "request": "join",
                "ptype": "publisher",
                "room": self.placement.room,
                "pin": self.placement.pin,
                "display": self.classroom_id,
            }
        )
        data = joined["plugindata"]["data"]
        try:
            self.feed_id = int(data["id"])
        except (KeyError, TypeError, ValueError) as err:
            raise JanusProtocolError(self.session.url, f"join answered {data!r}") from err
        self.feeds.update(data)
        if not self._publish:
            return  # a listener only: joined for the room's feed list
        pc = RTCPeerConnection(peer_configuration())
        self.pc = pc
        mids: list[tuple[object, str]] = []
        for name in self._publish:
            source = self._sources[name]
            track = (
                self._track_for(name)
                if self._track_for is not None
                else EncodedTrack(source.bus, source.request_keyframe)
            )
            self.sent[name] = track
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(h264_opus_only(source.kind))  # type: ignore[arg-type]
            aiortc_seam.use_packer(transceiver.sender)
            aiortc_seam.on_keyframe_request(transceiver.sender, track.request_keyframe)
            if source.kind == "video" and self._on_estimate is not None:
                self._estimate(transceiver.sender, name, source, self._on_estimate)
            self.senders[name] = transceiver.sender
            mids.append((transceiver, name))

        @pc.on("connectionstatechange")
        def _state() -> None:
            log.info(
                "janus room %d: %s media %s",
                self.placement.room,
                self.classroom_id,
                pc.connectionState,
            )

        await pc.setLocalDescription(await pc.createOffer())
        self.marking = mark_media(pc, self.network, self.classroom_id)
        descriptions = [
            {"mid": t.mid or "", "description": n}  # type: ignore[attr-defined]
            for t, n in mids
        ]
        event = await self.handle.request(
            {"request": "publish", "descriptions": descriptions},
            {"type": "offer", "sdp": pc.localDescription.sdp},
        )
        jsep = event.get("jsep")
        if not isinstance(jsep, dict) or jsep.get("type") != "answer":
            raise JanusProtocolError(self.session.url, "publish was answered without an SDP answer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type="answer"))

    def _estimate(
        self, sender: RTCRtpSender, name: str, source: MediaSource, sink: EstimateSink
    ) -> None:
        """Feed ``sink`` the track's uplink estimate on each receiver report and REMB."""
        estimator = self.estimators[name] = UplinkEstimator()
        meter = RateMeter()

        def on_report(report: aiortc_seam.ReceiverReport) -> None:
            sending = meter.rate(time.monotonic(), source.bus.bytes)
            if sending is not None:
                sink(name, estimator.report(sending, report.fraction_lost, report.rtt_s))

        def on_remb(bps: int) -> None:
            capped = estimator.remb(bps)
            if capped is not None:
                sink(name, capped)

        aiortc_seam.on_receiver_report(sender, on_report)
        aiortc_seam.on_bitrate_estimate(sender, on_remb)

    def _on_event(self, event: Event) -> None:
        kind = event.get("janus")
        if kind == "event":
            data = (event.get("plugindata") or {}).get("data") or {}
            self.feeds.update(data)
        elif kind == "hangup":
            # Janus closed our PeerConnection (DTLS alert, ICE failure): media has stopped.
            self.hangup_reason = str(event.get("reason", "hangup"))
            log.warning(
                "janus room %d: %s publisher hung up: %s",
                self.placement.room,
                self.classroom_id,
                self.hangup_reason,
            )

    async def stop(self) -> None:
        """Leave the room, detach, close the peer connection and release the sources."""
        await self.handle.leave(self.placement.room)
        if self.pc is not None:
            pc, self.pc = self.pc, None
            await pc.close()
        if self.marking is not None:
            self.marking.close()
        for track in self.sent.values():
            track.stop()


def mark_media(
    pc: RTCPeerConnection, network: NetworkProfile | None, what: str
) -> DscpMarking | None:
    """DSCP-mark a peer connection's media socket (after ``setLocalDescription``)."""
    if network is None:
        return None
    try:
        return mark_peer_connection(pc, network)
    except aiortc_seam.SeamBroken as err:
        log.error("janus media of %s not DSCP-marked: %s", what, err)
        return None
