"""The relay for one lesson: its feeds and the peer connection of each agent in it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiortc import (
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError

from controller.relay.feed import Feed, RelayTrack
from protocols.media import aiortc_seam
from protocols.media.rtc_config import peer_configuration
from protocols.messages import TrackMid

log = logging.getLogger(__name__)

MAX_VIEWERS = 16  # console viewers per lesson; each one is another copy of every feed it asks


def relayed_codecs(kind: str) -> list[RTCRtpCodecCapability]:
    """What the relay can send without transcoding: H.264 (+RTX) for video, Opus for audio.

    A browser lists VP8 first; a viewer's transceivers are told to prefer these before its
    offer is applied, so the answer selects what the agents actually encode."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    wanted = ("video/h264", "video/rtx") if kind == "video" else ("audio/opus",)
    return [c for c in caps if c.mimeType.lower() in wanted]


class SignallingError(ValueError):
    """An offer that the relay cannot answer; the message says which part and why."""


@dataclass
class AgentPeer:
    """One agent's peer connection into a lesson's relay."""

    classroom_id: str
    pc: RTCPeerConnection
    published: list[Feed] = field(default_factory=list)
    subscribed: list[RelayTrack] = field(default_factory=list)


@dataclass(frozen=True)
class FeedRef:
    """One feed a console viewer asks for, in the order of its offer's media sections."""

    classroom: str
    track: str
    kind: str


@dataclass
class ViewerPeer:
    """A console viewer's receive-only peer connection (patrol): it never publishes."""

    viewer_id: str
    pc: RTCPeerConnection
    feeds: list[FeedRef]
    subscribed: list[RelayTrack] = field(default_factory=list)
    opened_at: float = field(default_factory=time.monotonic)
    # Called once when the viewer closes, however it closes (patrol audits the end).
    on_close: Callable[[], Awaitable[None]] | None = None


class LessonRelay:
    """Forwards encoded frames between the classrooms of one lesson (lead ⇄ receivers)."""

    def __init__(self, lesson_id: str) -> None:
        self.lesson_id = lesson_id
        self._feeds: dict[tuple[str, str], Feed] = {}
        self._peers: dict[str, AgentPeer] = {}
        self._viewers: dict[str, ViewerPeer] = {}
        self._last_frame: dict[tuple[str, str], float] = {}

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

        key = (feed.source_classroom, feed.track)

        def on_frame(kind: str, frame: object) -> None:
            self._last_frame[key] = time.monotonic()
            feed.publish(frame.data, frame.timestamp)  # type: ignore[attr-defined]

        aiortc_seam.tap_receiver(receiver, on_frame, decode=False)  # type: ignore[arg-type]
        aiortc_seam.release_on_marker(receiver)  # type: ignore[arg-type]
        if spec.kind == "audio":  # sound is protected first: lost packets are asked again
            aiortc_seam.enable_audio_nack(receiver)  # type: ignore[arg-type]
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

    async def answer_viewer(
        self,
        viewer_id: str,
        sdp: str,
        feeds: list[FeedRef],
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        """Answer a console viewer's receive-only offer: one media section per entry of
        ``feeds``, in that order, each sent the feed's encoded frames as they arrive.
        ``on_close`` is awaited when the viewer, once answered, closes for any reason.

        Raises SignallingError (what is wrong and what to send instead) for an unknown feed,
        a kind mismatch, or an offer whose sections do not match ``feeds``."""
        if not feeds:
            raise SignallingError("'feeds' is empty: name at least one feed to watch")
        if viewer_id not in self._viewers and len(self._viewers) >= MAX_VIEWERS:
            raise SignallingError(
                f"lesson {self.lesson_id} already has {MAX_VIEWERS} viewers; close one "
                "(DELETE its watch) and try again"
            )
        await self.close_viewer(viewer_id)
        chosen: list[Feed] = []
        for ref in feeds:
            feed = self._feeds.get((ref.classroom, ref.track))
            if feed is None:
                known = ", ".join(sorted(f"{c}/{t}" for c, t in self._feeds)) or "none yet"
                raise SignallingError(
                    f"lesson {self.lesson_id} has no feed {ref.classroom}/{ref.track} "
                    f"(it has: {known}); GET /api/v1/live lists the feeds"
                )
            if feed.kind != ref.kind:
                raise SignallingError(
                    f"feed {ref.classroom}/{ref.track} is {feed.kind}, asked for as {ref.kind}"
                )
            chosen.append(feed)
        pc = RTCPeerConnection(peer_configuration())
        viewer = ViewerPeer(viewer_id, pc, list(feeds))
        self._viewers[viewer_id] = viewer
        try:
            # Transceivers made before the offer is applied are matched to its media
            # sections in order (per kind), and keep their codec preferences.
            for feed in chosen:
                transceiver = pc.addTransceiver(feed.kind, direction="sendonly")
                transceiver.setCodecPreferences(relayed_codecs(feed.kind))
                relay_track = feed.subscribe()  # also asks the publisher for a keyframe
                viewer.subscribed.append(relay_track)
                transceiver.sender.replaceTrack(relay_track)
                aiortc_seam.use_packer(transceiver.sender)
                aiortc_seam.on_keyframe_request(transceiver.sender, relay_track.request_keyframe)
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            except (ValueError, InvalidAccessError, InvalidStateError, OperationError) as err:
                raise SignallingError(f"the viewer's offer was refused: {err}") from None
            transceivers = pc.getTransceivers()
            offered = [t.kind for t in transceivers if t.mid is not None]
            if len(transceivers) != len(chosen) or len(offered) != len(chosen):
                raise SignallingError(
                    f"the offer has {len(offered)} media sections ({', '.join(offered)}) but "
                    f"'feeds' lists {len(chosen)} ({', '.join(f.kind for f in chosen)}); add "
                    "one recvonly transceiver per feed, in the same order"
                )
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self.close_viewer(viewer_id)
            raise

        @pc.on("connectionstatechange")
        async def _state() -> None:
            log.info("lesson %s: viewer %s %s", self.lesson_id, viewer_id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                current = self._viewers.get(viewer_id)
                if current is not None and current.pc is pc:
                    await self.close_viewer(viewer_id)

        viewer.on_close = on_close
        return pc.localDescription.sdp

    async def close_viewer(self, viewer_id: str) -> bool:
        """Close a console viewer's connection; False if there was none by that id."""
        viewer = self._viewers.pop(viewer_id, None)
        if viewer is None:
            return False
        for track in viewer.subscribed:
            track.stop()
        await viewer.pc.close()
        if viewer.on_close is not None:
            try:
                await viewer.on_close()
            except Exception:  # the viewer is closed; what failed is its bookkeeping
                log.exception("lesson %s: viewer %s: on_close failed", self.lesson_id, viewer_id)
        return True

    @property
    def viewers(self) -> list[str]:
        """The ids of the open console viewers."""
        return list(self._viewers)

    def frame_age_s(self, source_classroom: str, track: str) -> float | None:
        """Seconds since the relay last got a frame of this feed; None if it never did."""
        last = self._last_frame.get((source_classroom, track))
        return None if last is None else time.monotonic() - last

    async def close(self) -> None:
        """Close every connection (agents' and viewers') and feed."""
        await asyncio.gather(*(self.close_viewer(v) for v in list(self._viewers)))
        await asyncio.gather(*(self.disconnect(c) for c in list(self._peers)))
        for feed in self._feeds.values():
            feed.close()
        self._feeds.clear()

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-feed counters, keyed ``classroom/track`` (safe from another thread: it
        reads a copy of the feeds)."""
        return {
            f"{f.source_classroom}/{f.track}": {
                "frames_in": f.frames_in,
                "bytes_in": f.bytes_in,
                "subscribers": f.subscribers,
                "keyframe_requests": f.keyframe_requests,
                "dropped": f.dropped,
            }
            for f in list(self._feeds.values())
        }
