"""The relay for one lesson: its feeds and the peer connection of each agent in it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection, RTCSessionDescription

from controller.relay.feed import Feed, RelayTrack
from protocols.media import aiortc_seam
from protocols.media.rtc_config import peer_configuration
from protocols.messages import TrackMid

log = logging.getLogger(__name__)


class SignallingError(ValueError):
    """An offer that the relay cannot answer; the message says which part and why."""


@dataclass
class AgentPeer:
    """One agent's peer connection into a lesson's relay."""

    classroom_id: str
    pc: RTCPeerConnection
    published: list[Feed] = field(default_factory=list)
    subscribed: list[RelayTrack] = field(default_factory=list)


class LessonRelay:
    """Forwards encoded frames between the classrooms of one lesson (lead ⇄ receivers)."""

    def __init__(self, lesson_id: str) -> None:
        self.lesson_id = lesson_id
        self._feeds: dict[tuple[str, str], Feed] = {}
        self._peers: dict[str, AgentPeer] = {}

    def feed(self, source_classroom: str, track: str, kind: str) -> Feed:
        """The feed for a classroom's track, created on first use by either side."""
        key = (source_classroom, track)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = Feed(source_classroom, track, kind)
        elif feed.kind != kind:
            raise SignallingError(
                f"track {track!r} of {source_classroom!r} is {feed.kind}, offered as {kind}"
            )
        return feed

    @property
    def feeds(self) -> list[Feed]:
        """Every feed in the lesson."""
        return list(self._feeds.values())

    async def answer(self, classroom_id: str, sdp: str, tracks: list[TrackMid]) -> str:
        """Accept an agent's offer; replaces any earlier connection from that classroom."""
        await self.disconnect(classroom_id)
        pc = RTCPeerConnection(peer_configuration())
        peer = AgentPeer(classroom_id, pc)
        self._peers[classroom_id] = peer
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            by_mid = {t.mid: t for t in tracks}
            for transceiver in pc.getTransceivers():
                spec = by_mid.get(transceiver.mid or "")
                if spec is None:
                    raise SignallingError(
                        f"offer has media section mid={transceiver.mid} with no entry in 'tracks'"
                    )
                if spec.kind != transceiver.kind:
                    raise SignallingError(
                        f"mid={spec.mid} is {transceiver.kind}, 'tracks' says {spec.kind}"
                    )
                if spec.direction == "send":
                    self._attach_publisher(peer, transceiver.receiver, spec)
                    transceiver.direction = "recvonly"
                else:
                    feed = self.feed(spec.source_classroom, spec.track, spec.kind)
                    relay_track = feed.subscribe()
                    transceiver.sender.replaceTrack(relay_track)
                    aiortc_seam.use_packer(transceiver.sender)
                    aiortc_seam.on_keyframe_request(
                        transceiver.sender, relay_track.request_keyframe
                    )
                    transceiver.direction = "sendonly"
                    peer.subscribed.append(relay_track)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self.disconnect(classroom_id)
            raise

        @pc.on("connectionstatechange")
        async def _state() -> None:
            log.info("lesson %s: %s media %s", self.lesson_id, classroom_id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                current = self._peers.get(classroom_id)
                if current is not None and current.pc is pc:
                    await self.disconnect(classroom_id)

        return pc.localDescription.sdp

    def _attach_publisher(self, peer: AgentPeer, receiver: object, spec: TrackMid) -> None:
        if spec.source_classroom != peer.classroom_id:
            raise SignallingError(
                f"{peer.classroom_id!r} may only publish its own tracks, "
                f"not {spec.source_classroom!r}/{spec.track}"
            )
        feed = self.feed(peer.classroom_id, spec.track, spec.kind)

        def on_frame(kind: str, frame: object) -> None:
            feed.publish(frame.data, frame.timestamp)  # type: ignore[attr-defined]

        aiortc_seam.tap_receiver(receiver, on_frame, decode=False)  # type: ignore[arg-type]
        aiortc_seam.release_on_marker(receiver)  # type: ignore[arg-type]
        feed.attach_publisher(lambda: aiortc_seam.request_keyframe(receiver))  # type: ignore[arg-type]
        peer.published.append(feed)

    async def disconnect(self, classroom_id: str) -> None:
        """Close one classroom's connection; its feeds wait for it to come back."""
        peer = self._peers.pop(classroom_id, None)
        if peer is None:
            return
        for feed in peer.published:
            feed.detach_publisher()
        for track in peer.subscribed:
            track.stop()
        await peer.pc.close()

    async def close(self) -> None:
        """Close every connection and feed."""
        await asyncio.gather(*(self.disconnect(c) for c in list(self._peers)))
        for feed in self._feeds.values():
            feed.close()
        self._feeds.clear()

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-feed counters, keyed ``classroom/track``."""
        return {
            f"{f.source_classroom}/{f.track}": {
                "frames_in": f.frames_in,
                "bytes_in": f.bytes_in,
                "subscribers": f.subscribers,
                "keyframe_requests": f.keyframe_requests,
            }
            for f in self._feeds.values()
        }
