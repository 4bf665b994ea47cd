"""Receive one remote classroom's tracks from a lesson's VideoRoom, as the session does.

One subscriber handle per remote classroom (not one for the whole room): a classroom
that leaves and comes back gets a new feed, and only its own subscription is rebuilt,
without renegotiating every other classroom's media on the same peer connection.

Each received track goes the way the session's relay path goes: the encoded frame is
tapped at the jitter-buffer output (for the recorder) and still decoded (for the panel
and the echo canceller), frames are released on their marker bit, and lost audio is asked
for again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from edge_agent.media_plane.exceptions import JanusProtocolError
from edge_agent.media_plane.feeds import Feed
from edge_agent.media_plane.janus_session import Event, JanusSession
from edge_agent.media_plane.publisher import mark_media
from edge_agent.media_plane.videoroom import VideoRoomHandle
from protocols.media import aiortc_seam
from protocols.media.dscp_seam import DscpMarking
from protocols.media.rtc_config import peer_configuration
from protocols.messages import JanusPlacement, Subscription
from protocols.network_profile import NetworkProfile

log = logging.getLogger(__name__)

TapFactory = Callable[[Subscription], aiortc_seam.FrameTap]


@dataclass
class RemoteTrack:
    """A subscribed remote track: what it is, and aiortc's receiver and decoded track."""

    sub: Subscription
    mid: str
    receiver: RTCRtpReceiver
    track: MediaStreamTrack

    @property
    def key(self) -> str:
        """The session's key for a remote track (source classroom - track)."""
        return f"{self.sub.source_classroom}-{self.sub.track}"


class JanusSubscriber:
    """Subscribes to the tracks ``wanted`` of one remote classroom's ``feed``."""

    def __init__(
        self,
        session: JanusSession,
        placement: JanusPlacement,
        feed: Feed,
        wanted: list[Subscription],
        *,
        tap: TapFactory | None = None,
        network: NetworkProfile | None = None,
    ) -> None:
        self.session = session
        self.placement = placement
        self.feed = feed
        self.wanted = list(wanted)
        self._tap = tap
        self.handle = VideoRoomHandle(session, self._on_event)
        self.pc: RTCPeerConnection | None = None
        self.received: dict[str, RemoteTrack] = {}
        self.hangup_reason: str | None = None
        self.network = network
        self.marking: DscpMarking | None = None

    async def start(self) -> None:
        """Join as a subscriber with the room's PIN, answer Janus's offer and start."""
        streams = []
        by_mid: dict[str, Subscription] = {}
        for sub in self.wanted:
            stream = self.feed.stream(sub.track)
            if stream is None:
                raise JanusProtocolError(
                    self.session.url,
                    f"classroom {self.feed.classroom!r} does not publish {sub.track!r}",
                )
            streams.append({"feed": self.feed.feed_id, "mid": stream.mid})
            by_mid[stream.mid] = sub
        await self.handle.attach()
        attached = await self.handle.request(
            {
                "request": "join",
                "ptype": "subscriber",
                "room": self.placement.room,
                "pin": self.placement.pin,
                "streams": streams,
            }
        )
        jsep = attached.get("jsep")
        if not isinstance(jsep, dict) or jsep.get("type") != "offer":
            raise JanusProtocolError(self.session.url, "subscribe was answered without an offer")
        # Janus numbers the subscriber's own m-lines; feed_mid says which stream each is.
        ours: dict[str, Subscription] = {}
        for s in attached["plugindata"]["data"].get("streams") or []:
            match = by_mid.get(str(s.get("feed_mid")))
            if match is not None:
                ours[str(s["mid"])] = match
        pc = RTCPeerConnection(peer_configuration())
        self.pc = pc

        @pc.on("connectionstatechange")
        def _state() -> None:
            log.info(
                "janus room %d: subscription to %s %s",
                self.placement.room,
                self.feed.classroom,
                pc.connectionState,
            )

        await pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type="offer"))
        for transceiver in pc.getTransceivers():
            wanted = ours.get(transceiver.mid or "")
            if wanted is None:
                transceiver.direction = "inactive"
                continue
            receiver = transceiver.receiver
            if self._tap is not None:
                aiortc_seam.tap_receiver(receiver, self._tap(wanted), decode=True)
            if wanted.kind == "audio":
                aiortc_seam.enable_audio_nack(receiver)
            aiortc_seam.release_on_marker(receiver)
            remote = RemoteTrack(wanted, transceiver.mid or "", receiver, receiver.track)
            self.received[remote.key] = remote
        await pc.setLocalDescription(await pc.createAnswer())
        self.marking = mark_media(pc, self.network, f"the subscription to {self.feed.classroom}")
        await self.handle.request(
            {"request": "start"}, {"type": "answer", "sdp": pc.localDescription.sdp}
        )

    def request_keyframe(self) -> bool:
        """Ask the publisher for a keyframe on every video track (PLI through Janus)."""
        asked = False
        for remote in self.received.values():
            if remote.sub.kind == "video":
                asked = aiortc_seam.request_keyframe(remote.receiver) or asked
        return asked

    def _on_event(self, event: Event) -> None:
        if event.get("janus") == "hangup":
            self.hangup_reason = str(event.get("reason", "hangup"))
            log.warning(
                "janus room %d: subscription to %s hung up: %s",
                self.placement.room,
                self.feed.classroom,
                self.hangup_reason,
            )

    async def stop(self) -> None:
        """Leave, detach and close the peer connection."""
        await self.handle.leave(self.placement.room)
        if self.pc is not None:
            pc, self.pc = self.pc, None
            await pc.close()
        if self.marking is not None:
            self.marking.close()
