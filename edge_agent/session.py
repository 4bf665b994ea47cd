"""One lesson's media on the agent: the peer connection to the relay, what it sends,
what it receives, and the figures it reports at the end."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import av
import numpy as np
from aiortc import (
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from edge_agent.media import barcode
from edge_agent.media.adaptation import RateAdapter, rung_name
from edge_agent.media.counters import CounterSet, percentile
from edge_agent.media.source_runner import SourceRunner
from edge_agent.media.tracks import EncodedTrack
from edge_agent.media_plane.lesson import JanusLessonMedia
from edge_agent.media_plane.link import JanusLink
from edge_agent.media_plane.subscriber import JanusSubscriber
from edge_agent.network.dscp import mark_peer_connection
from edge_agent.recording.lesson_recorder import LessonRecorder, TrackSpec
from edge_agent.sources import MediaSource
from protocols.envelope import Envelope
from protocols.media import aiortc_seam
from protocols.media.dscp_seam import DscpMarking
from protocols.media.encoded_frame import AUDIO_TIME_BASE, VIDEO_TIME_BASE, EncodedFrame
from protocols.media.h264 import is_keyframe
from protocols.media.rtc_config import peer_configuration
from protocols.messages import (
    Body,
    JanusPlacement,
    JoinLesson,
    SdpAnswer,
    SdpOffer,
    Subscription,
    TrackMid,
    TrackReport,
)
from protocols.network_profile import NetworkProfile

log = logging.getLogger(__name__)

Requester = Callable[[Body, float], Awaitable[Envelope]]
Decoded = Callable[[Subscription, av.VideoFrame | av.AudioFrame], None]
MAX_LATENCY_SAMPLES = 200_000
ADAPT_TICK_S = 0.5
QOS_INTERVAL_S = 2.0


@dataclass
class ReceivedTrack:
    """Bookkeeping for one remote track."""

    sub: Subscription
    receiver: RTCRtpReceiver | None = None
    frames: int = 0
    bytes: int = 0
    counted: int = 0
    decoded: int = 0
    counters: CounterSet = field(default_factory=CounterSet)
    latencies_ms: list[float] = field(default_factory=list)
    counting: bool = False

    @property
    def key(self) -> str:
        """Recorder key of the track."""
        return f"{self.sub.source_classroom}-{self.sub.track}"


def _h264_only(kind: str) -> list[object]:
    caps = RTCRtpSender.getCapabilities(kind).codecs
    if kind != "video":
        return [c for c in caps if c.mimeType.lower() == "audio/opus"]
    return [c for c in caps if c.mimeType.lower() in ("video/h264", "video/rtx")]


class LessonSession:
    """Media of one lesson; survives reconnects of its peer connection."""

    def __init__(
        self,
        classroom_id: str,
        join: JoinLesson,
        sources: dict[str, MediaSource],
        recorder: LessonRecorder,
        request: Requester,
        programme: MediaSource | None = None,
        *,
        on_decoded: Decoded | None = None,
        network: NetworkProfile | None = None,
        devices: dict[str, tuple[str, int]] | None = None,
    ) -> None:
        self.classroom_id = classroom_id
        self.join = join
        self._sources = sources
        self.recorder = recorder
        self._request = request
        self._pc: RTCPeerConnection | None = None
        self._sent: dict[str, EncodedTrack] = {}
        self._received = {
            f"{s.source_classroom}-{s.track}": ReceivedTrack(s) for s in join.subscribe
        }
        self._consumers: list[asyncio.Task[None]] = []
        self._recording_sinks: dict[str, Callable[[EncodedFrame], None]] = {}
        self._sent_reports: dict[str, TrackReport] = {}
        # Decoded remote media for the panel output and the echo canceller's far end.
        self.on_decoded = on_decoded
        self.connected = asyncio.Event()
        self.connect_count = 0
        # DSCP marks for the media sockets (the network profile), and what they did.
        self.network = network
        self.marking: DscpMarking | None = None
        # Role and profile bitrate of each local device, for the rate adapter that moves
        # the encoders with the relay's bitrate estimates.
        self.devices = dict(devices or {})
        self.adapter: RateAdapter | None = None
        self._adapt_task: asyncio.Task[None] | None = None
        # Per track (local name, or source-track for a remote one): loss % and RTT ms from
        # aiortc's RTCP statistics, for the heartbeat and the console's patrol tiles.
        self.qos: dict[str, tuple[float | None, float | None]] = {}
        self._senders: dict[str, RTCRtpSender] = {}
        self._lost_seen: dict[str, tuple[int, int]] = {}
        self._stats_task: asyncio.Task[None] | None = None
        # The lesson's Janus room, when the join places it there instead of the relay.
        self._janus: JanusLink | None = None
        # Rooms on an instance the lesson moved away from, being left in the background.
        self._leaving: set[asyncio.Task[None]] = set()
        # Local sources feed the recorder whether or not the relay is reachable.
        for name in join.publish:
            sink = self._recording_sink(name)
            self._recording_sinks[name] = sink
            sources[name].bus.subscribe(sink)
        # Each classroom's microphone is recorded inside its first camera's files, so
        # the recording plays with sound; a classroom with no camera keeps an audio file.
        # The room microphone is muxed into the first local camera's files, unless that
        # camera is a real device that can be unplugged mid-lesson: then the microphone
        # keeps its own files, so losing the camera never loses the sound.
        own_camera = next(
            (
                n
                for n in join.publish
                if sources[n].kind == "video" and isinstance(sources[n], SourceRunner)
            ),
            None,
        )
        # Movie mode: the director's programme is recorded too, and carries the sound.
        self._programme = programme
        if programme is not None:
            own_camera = programme.name
            self.recorder.add_track(
                TrackSpec(
                    programme.name,
                    "video",
                    "send",
                    classroom_id,
                    programme.width,
                    programme.height,
                    fps=round(programme.fps),
                )
            )
            sink = self._recording_sink(programme.name)
            self._recording_sinks[programme.name] = sink
            programme.bus.subscribe(sink)
        for name in join.publish:
            runner = sources[name]
            mux = own_camera if runner.kind == "audio" else None
            self.recorder.add_track(
                TrackSpec(
                    name,
                    runner.kind,
                    "send",
                    classroom_id,
                    *self._dims(name),
                    mux,
                    fps=round(runner.fps),
                )
            )
        for rt in self._received.values():
            camera = next(
                (
                    s
                    for s in join.subscribe
                    if s.kind == "video" and s.source_classroom == rt.sub.source_classroom
                ),
                None,
            )
            mux = (
                f"{camera.source_classroom}-{camera.track}"
                if camera is not None and rt.sub.kind == "audio"
                else None
            )
            self.recorder.add_track(
                TrackSpec(
                    rt.sub.track,
                    rt.sub.kind,
                    "recv",
                    rt.sub.source_classroom,
                    rt.sub.width,
                    rt.sub.height,
                    mux,
                    fps=rt.sub.fps,
                )
            )

    def _dims(self, name: str) -> tuple[int, int]:
        runner = self._sources[name]
        return runner.width, runner.height

    @property
    def programme(self) -> MediaSource | None:
        """The director's programme this session records (movie mode), if any."""
        return self._programme

    @property
    def lesson_id(self) -> str:
        """The lesson this session belongs to."""
        return self.join.lesson_id

    async def connect(self) -> None:
        """(Re)build the lesson's media: in the Janus room the join names, else a peer
        connection to the relay with SDP exchanged over the link."""
        await self._close_pc()
        if self.join.media is not None:
            await self._connect_janus(self.join.media)
        else:
            await self._connect_relay()
        self.connect_count += 1
        if self._stats_task is None:
            self._stats_task = asyncio.create_task(self._watch_qos(), name=f"qos-{self.lesson_id}")
            self._stats_task.add_done_callback(_log_failure)
        if self.adapter is not None and self._adapt_task is None:
            self._adapt_task = asyncio.create_task(self._adapt(), name=f"adapt-{self.lesson_id}")
            self._adapt_task.add_done_callback(_log_failure)

    def _sent_track(self, name: str) -> EncodedTrack:
        """A new track for a local source, counting on from the one it replaces."""
        runner = self._sources[name]
        track = EncodedTrack(runner.bus, runner.request_keyframe)
        old = self._sent.get(name)
        if old is not None:  # keep counting across reconnects
            track.count_from, track.frames = old.count_from, old.frames
            track.first_counter, track.last_counter = old.first_counter, old.last_counter
        self._sent[name] = track
        return track

    async def _connect_relay(self) -> None:
        pc = RTCPeerConnection(peer_configuration())
        self._pc = pc
        mids: list[tuple[object, str, str, str, str]] = []
        for name in self.join.publish:
            runner = self._sources[name]
            track = self._sent_track(name)
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(_h264_only(runner.kind))  # type: ignore[arg-type]
            aiortc_seam.use_packer(transceiver.sender)
            aiortc_seam.on_keyframe_request(transceiver.sender, track.request_keyframe)
            self._senders[name] = transceiver.sender
            if runner.kind == "video":
                aiortc_seam.on_bitrate_estimate(
                    transceiver.sender, self._estimate_sink(self._adapter(), name)
                )
            mids.append((transceiver, name, runner.kind, "send", self.classroom_id))
        for rt in self._received.values():
            transceiver = pc.addTransceiver(rt.sub.kind, direction="recvonly")
            transceiver.setCodecPreferences(_h264_only(rt.sub.kind))  # type: ignore[arg-type]
            rt.receiver = transceiver.receiver
            self.recorder.discontinuity(rt.key)
            aiortc_seam.tap_receiver(transceiver.receiver, self._tap_for(rt), decode=True)
            if rt.sub.kind == "audio":
                aiortc_seam.enable_audio_nack(transceiver.receiver)
            aiortc_seam.release_on_marker(transceiver.receiver)
            mids.append((transceiver, rt.sub.track, rt.sub.kind, "recv", rt.sub.source_classroom))

        @pc.on("connectionstatechange")
        def _state() -> None:
            log.info("lesson %s media %s", self.lesson_id, pc.connectionState)
            if pc.connectionState == "connected":
                self.connected.set()
            elif pc.connectionState in ("failed", "closed"):
                self.connected.clear()

        await pc.setLocalDescription(await pc.createOffer())
        if self.network is not None:
            try:
                self.marking = mark_peer_connection(pc, self.network)
            except aiortc_seam.SeamBroken as err:
                log.error("lesson %s: media not DSCP-marked: %s", self.lesson_id, err)
        tracks = [
            TrackMid(
                mid=t.mid or "",  # type: ignore[attr-defined]
                track=n,
                kind=k,  # type: ignore[arg-type]
                direction=d,  # type: ignore[arg-type]
                source_classroom=s,
            )
            for t, n, k, d, s in mids
        ]
        reply = await self._request(
            SdpOffer(lesson_id=self.lesson_id, sdp=pc.localDescription.sdp, tracks=tracks), 15.0
        )
        answer = reply.expect(SdpAnswer)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
        # aiortc creates the remote tracks while applying the answer.
        for rt in self._received.values():
            assert rt.receiver is not None
            task = asyncio.create_task(
                self._consume(rt, rt.receiver.track), name=f"consume-{rt.key}"
            )
            task.add_done_callback(_log_failure)
            self._consumers.append(task)

    async def _connect_janus(self, placement: JanusPlacement) -> None:
        """Publish and subscribe in the lesson's Janus room, with the same sent tracks,
        recording taps, decoding, DSCP marks and rate adapter as the relay path."""
        if any(self._sources[n].kind == "video" for n in self.join.publish):
            self._adapter()  # encoders at their top level; REMB moves them from there
        sinks: dict[str, Callable[[int], None]] = {}

        def on_estimate(name: str, bps: int) -> None:
            if name not in sinks:
                sinks[name] = self._estimate_sink(self._adapter(), name)
            sinks[name](bps)

        def make(p: JanusPlacement) -> JanusLessonMedia:
            return JanusLessonMedia(
                self.classroom_id,
                self.join,
                p,
                self._sources,
                tap=self._janus_tap,
                on_subscribed=self._janus_subscribed,
                on_estimate=on_estimate,
                network=self.network,
                track_for=self._sent_track,
            )

        link = JanusLink(placement, make, on_up=self._janus_up, on_down=self.connected.clear)
        self._janus = link
        await link.start()

    def _janus_up(self, media: JanusLessonMedia) -> None:
        """A (re)joined room: its senders for the QoS figures, its media state."""
        self._senders = dict(media.publisher.senders)
        pc = media.publisher.pc
        if pc is None:  # publishes nothing (broadcast only): joined is connected
            self.connected.set()
            return

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "connected":
                self.connected.set()
            elif pc.connectionState in ("failed", "closed"):
                self.connected.clear()

        if pc.connectionState == "connected":
            self.connected.set()

    def _janus_tap(self, sub: Subscription) -> Callable[[str, JitterFrame], None]:
        """The recorder's tap for a remote track, each subscription starting a new run."""
        rt = self._received[f"{sub.source_classroom}-{sub.track}"]
        self.recorder.discontinuity(rt.key)
        return self._tap_for(rt)

    def _janus_subscribed(self, subscriber: JanusSubscriber) -> None:
        """A remote classroom (re)subscribed: drain its decoded tracks as the relay's."""
        self._consumers = [t for t in self._consumers if not t.done()]
        for remote in subscriber.received.values():
            rt = self._received.get(remote.key)
            if rt is None:
                continue
            rt.receiver = remote.receiver
            task = asyncio.create_task(self._consume(rt, remote.track), name=f"consume-{rt.key}")
            task.add_done_callback(_log_failure)
            self._consumers.append(task)

    async def _watch_qos(self) -> None:
        """Every few seconds, loss and round trip per track from aiortc's RTCP stats."""
        while True:
            await asyncio.sleep(QOS_INTERVAL_S)
            for name, sender in list(self._senders.items()):
                stats = await sender.getStats()
                for st in stats.values():
                    if getattr(st, "type", "") == "remote-inbound-rtp":
                        rtt = getattr(st, "roundTripTime", None)
                        lost = getattr(st, "fractionLost", None)
                        self.qos[name] = (
                            None if lost is None else round(100.0 * lost / 256, 2),
                            None if rtt is None else round(rtt * 1000.0, 1),
                        )
            for key, rt in self._received.items():
                if rt.receiver is None:
                    continue
                stats = await rt.receiver.getStats()
                for st in stats.values():
                    if getattr(st, "type", "") != "inbound-rtp":
                        continue
                    lost = int(getattr(st, "packetsLost", 0) or 0)
                    got = int(getattr(st, "packetsReceived", 0) or 0)
                    lost0, got0 = self._lost_seen.get(key, (0, 0))
                    self._lost_seen[key] = (lost, got)
                    total = (lost - lost0) + (got - got0)
                    if total > 0:
                        loss = round(100.0 * max(lost - lost0, 0) / total, 2)
                        self.qos[key] = (loss, None)

    def _estimate_sink(self, adapter: RateAdapter, name: str) -> Callable[[int], None]:
        """Feed REMB estimates, with the source's measured rate over the last 2 s."""
        bus = self._sources[name].bus
        samples: collections.deque[tuple[float, int]] = collections.deque()

        def sink(bps: int) -> None:
            now = time.monotonic()
            samples.append((now, bus.bytes))
            while len(samples) > 2 and now - samples[1][0] >= 2.0:
                samples.popleft()
            (t0, b0), (t1, b1) = samples[0], samples[-1]
            sending = int((b1 - b0) * 8 / (t1 - t0)) if t1 - t0 >= 0.5 else 0
            adapter.estimate(name, bps, now, sending)

        return sink

    def _adapter(self) -> RateAdapter:
        """The rate adapter, with every local video source at its top level."""
        if self.adapter is not None:
            return self.adapter
        adapter = RateAdapter()
        for name in self.join.publish:
            runner = self._sources[name]
            if runner.kind != "video":
                continue
            role, bps = self.devices.get(name, ("teacher", 2_000_000))
            state = adapter.add(name, role, bps, self.network)
            if not runner.set_bitrate(state.current):  # a passed-through camera
                adapter.add(name, role, bps, self.network, adjustable=False)
        self.adapter = adapter
        return adapter

    async def _adapt(self) -> None:
        """Apply the adapter's decisions twice a second while the lesson lasts."""
        assert self.adapter is not None
        while True:
            await asyncio.sleep(ADAPT_TICK_S)
            for name, bps in self.adapter.step(time.monotonic()).items():
                self._sources[name].set_bitrate(bps)
                log.info(
                    "lesson %s: %s now %s (%d kbps) on the uplink's estimate",
                    self.lesson_id,
                    name,
                    rung_name(self.network, bps),
                    bps // 1000,
                )

    def _recording_sink(self, name: str) -> Callable[[EncodedFrame], None]:
        def sink(frame: EncodedFrame) -> None:
            self.recorder.offer(name, frame)

        return sink

    def _tap_for(self, rt: ReceivedTrack) -> Callable[[str, JitterFrame], None]:
        is_video = rt.sub.kind == "video"
        base = VIDEO_TIME_BASE if is_video else AUDIO_TIME_BASE

        def tap(kind: str, frame: JitterFrame) -> None:
            rt.frames += 1
            rt.bytes += len(frame.data)
            if rt.counting:
                rt.counted += 1
            if self.recorder.recording:
                key = is_keyframe(frame.data) if is_video else True
                self.recorder.offer(
                    rt.key, EncodedFrame(rt.sub.kind, frame.data, frame.timestamp, base, key)
                )

        return tap

    async def _consume(self, rt: ReceivedTrack, track: MediaStreamTrack) -> None:
        """Drain decoded frames; read the burned-in counter and capture time from video."""
        try:
            while True:
                frame = await track.recv()
                rt.decoded += 1
                if self.on_decoded is not None:
                    try:
                        self.on_decoded(rt.sub, cast(av.VideoFrame, frame))
                    except Exception:
                        log.exception("panel/echo feed failed for %s", rt.key)
                if rt.sub.kind != "video" or not rt.counting:
                    continue
                plane = cast(av.VideoFrame, frame).planes[0]
                rows = min(plane.height, 64)
                luma = np.frombuffer(memoryview(plane), np.uint8, count=rows * plane.line_size)
                stamp = barcode.read(luma.reshape(rows, plane.line_size)[:, : plane.width])
                if stamp is None:
                    continue
                counter, capture_ms = stamp
                rt.counters.add(counter)
                if len(rt.latencies_ms) < MAX_LATENCY_SAMPLES:
                    rt.latencies_ms.append(time.time() * 1000.0 - capture_ms)
        except MediaStreamError:
            return

    def received_counters(self) -> dict[str, tuple[int, int]]:
        """Frames and bytes received so far, per remote track."""
        return {key: (rt.frames, rt.bytes) for key, rt in self._received.items()}

    def start_counting(self) -> None:
        """The lesson proper has begun: count frames from here (and record)."""
        for name, track in self._sent.items():
            last = self._sources[name].bus.last_counter
            track.count_frames_from(None if last is None else last + 1)
        for rt in self._received.values():
            rt.counting = True
            rt.counted = 0
            rt.latencies_ms.clear()
            rt.counters = CounterSet()
        self.request_keyframes()

    def request_keyframes(self) -> None:
        """Keyframes on every local source and from every remote one (recording start)."""
        for name in self.join.publish:
            self._sources[name].request_keyframe()
        if self._programme is not None:
            self._programme.request_keyframe()
        for rt in self._received.values():
            if rt.receiver is not None and rt.sub.kind == "video":
                aiortc_seam.request_keyframe(rt.receiver)

    def freeze_sent(self) -> None:
        """Snapshot what was sent in the lesson (called when recording stops)."""
        for name, track in self._sent.items():
            self._sent_reports[name] = self._sent_report(name, track)

    def _sent_report(self, name: str, track: EncodedTrack) -> TrackReport:
        first, last = track.first_counter, track.last_counter
        ranges = [(first, last)] if first is not None and last is not None else []
        return TrackReport(
            track=name,
            kind=track.kind,  # type: ignore[arg-type]
            direction="send",
            source_classroom=self.classroom_id,
            frames=track.frames,
            first_counter=first,
            last_counter=last,
            counter_ranges=ranges,
        )

    def report(self) -> list[TrackReport]:
        """Per-track figures for the lesson report."""
        out = [self._sent_reports.get(n) or self._sent_report(n, t) for n, t in self._sent.items()]
        for rt in self._received.values():
            runs = rt.counters.runs
            out.append(
                TrackReport(
                    track=rt.sub.track,
                    kind=rt.sub.kind,
                    direction="recv",
                    source_classroom=rt.sub.source_classroom,
                    frames=len(rt.counters) if rt.sub.kind == "video" else rt.counted,
                    first_counter=runs[0][0] if runs else None,
                    last_counter=runs[-1][1] if runs else None,
                    latency_p50_ms=percentile(rt.latencies_ms, 50),
                    latency_p95_ms=percentile(rt.latencies_ms, 95),
                    counter_ranges=runs,
                )
            )
        return out

    async def _close_pc(self) -> None:
        if self._stats_task is not None:
            self._stats_task.cancel()
            await asyncio.gather(self._stats_task, return_exceptions=True)
            self._stats_task = None
        self._senders.clear()
        if self._janus is not None:
            link, self._janus = self._janus, None
            moved = (
                self.join.media is not None and self.join.media.api_url != link.placement.api_url
            )
            if moved:
                # The lesson moved to another instance because this one died or froze:
                # leaving it can wait out a request timeout, and must not hold up joining
                # the new room (a frozen instance kept receivers dark 5 s longer).
                leaving = asyncio.create_task(link.stop(), name=f"leave-{self.lesson_id}")
                self._leaving.add(leaving)
                leaving.add_done_callback(self._left)
            else:
                await link.stop()
        if self._adapt_task is not None:
            self._adapt_task.cancel()
            await asyncio.gather(self._adapt_task, return_exceptions=True)
            self._adapt_task = None
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self._consumers = []
        if self._pc is not None:
            pc, self._pc = self._pc, None
            await pc.close()
        self.connected.clear()

    def _left(self, task: asyncio.Task[None]) -> None:
        self._leaving.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "lesson %s: leaving the old Janus room failed: %s", self.lesson_id, task.exception()
            )

    async def close(self) -> None:
        """Close the media (recording is stopped separately)."""
        await self._close_pc()
        await asyncio.gather(*self._leaving, return_exceptions=True)
        for name, sink in self._recording_sinks.items():
            source = self._sources.get(name)
            if source is None and self._programme is not None and name == self._programme.name:
                source = self._programme
            if source is not None:
                source.bus.unsubscribe(sink)
        self._recording_sinks.clear()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())
