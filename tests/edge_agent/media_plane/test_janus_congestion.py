"""A congested uplink to a real Janus steps the publishing encoder down, and an open one
leaves it at the top: the rate adapter follows the estimate built from Janus's receiver
reports (Janus's REMB is only the room's cap, and this room has none).

The path to Janus is shaped with ``tc ... htb`` on the host's end of the veth, so only
the publisher's uplink is narrowed; a subscriber in the same room sees what got through.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest
from agent_janus_fixtures import CountingRunner, Lesson
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

from edge_agent.devices.synthetic import SyntheticCamera
from edge_agent.media.adaptation import RateAdapter
from edge_agent.media.bus import FrameBus
from edge_agent.media.encoders import VideoEncoder
from edge_agent.media.source_runner import SourceRunner
from edge_agent.media_plane.congestion import RateMeter
from edge_agent.media_plane.janus_session import JanusSession
from edge_agent.media_plane.publisher import JanusPublisher
from edge_agent.media_plane.subscriber import JanusSubscriber
from protocols.media import aiortc_seam
from protocols.messages import Subscription
from protocols.network_profile import load_network_profile_toml

pytestmark = [pytest.mark.janus, pytest.mark.timeout(60)]

NETWORK = load_network_profile_toml(
    """
name = "janus-congestion"
subnet = "10.77.0.0/16"
classroom_cap_kbps = 3000
ladder = [
  { name = "540p", width = 960, height = 540, kbps = 1000 },
  { name = "360p", width = 640, height = 360, kbps = 500 },
  { name = "180p", width = 320, height = 180, kbps = 200 },
]
""",
    "test",
)
TOP_BPS = 1_000_000
FPS = 15
SHAPED_KBIT = 450  # below the camera's 1 Mbps, above the 316 kbps level under it
ADAPT_TICK_S = 0.5  # as the lesson session applies the adapter's decisions

StartLesson = Callable[..., Awaitable[Lesson]]


@dataclass
class Uplink:
    """A publishing classroom as the lesson session runs it: encoder, adapter, subscriber."""

    runner: CountingRunner
    adapter: RateAdapter
    publisher: JanusPublisher
    subscriber: JanusSubscriber | None = None
    frames: list[float] = field(default_factory=list)  # loop times of complete frames seen
    reports: list[tuple[float, aiortc_seam.ReceiverReport]] = field(default_factory=list)
    packets: list[tuple[float, int, int]] = field(default_factory=list)  # (time, sent, got)
    received: list[int] = field(default_factory=lambda: [0])  # media packets at the subscriber

    async def sample(self, now: float) -> None:
        """Note the RTP packets the camera's sender sent and the subscriber received."""
        sent = 0
        for st in (await self.publisher.senders["teacher"].getStats()).values():
            if getattr(st, "type", "") == "outbound-rtp":
                sent += int(getattr(st, "packetsSent", 0) or 0)
        self.packets.append((now, sent, self.received[0]))

    def delivery(self, now: float, window_s: float = 2.0) -> float:
        """Share of the camera's packets the subscriber received over the last ``window_s``."""
        recent = [p for p in self.packets if p[0] >= now - window_s - 0.01]
        if len(recent) < 2 or recent[-1][0] - recent[0][0] < window_s * 0.75:
            return 0.0
        (_, s0, g0), (_, s1, g1) = recent[0], recent[-1]
        return (g1 - g0) / max(s1 - s0, 1)

    def delivered_fps(self, now: float, window_s: float = 2.0) -> float:
        """Complete frames the subscriber got per second over the last ``window_s``."""
        return sum(1 for t in self.frames if t > now - window_s) / window_s

    def loss(self, now: float, window_s: float = 3.0) -> float:
        """The worst loss Janus reported about the camera over the last ``window_s``."""
        recent = [r.fraction_lost for t, r in self.reports if t > now - window_s]
        return max(recent) if recent else 1.0


@pytest.fixture
def shaping() -> Iterator[list[str]]:
    """Interfaces a test shapes; their qdiscs are removed after it."""
    shaped: list[str] = []
    yield shaped
    for dev in shaped:
        subprocess.run(["tc", "qdisc", "del", "dev", dev, "root"], capture_output=True)


def _narrow_udp(dev: str, kbit: int) -> None:
    """Shape UDP (the media) leaving ``dev`` to ``kbit``, with a 200 ms buffer.

    Only UDP: the controller's admin polls to this Janus share the veth, and a polled
    instance that stops answering is (rightly) taken for dead and its lessons re-placed.
    """
    buffer_bytes = kbit * 1000 // 8 // 5
    for command in (
        f"qdisc add dev {dev} root handle 1: htb default 20",
        f"class add dev {dev} parent 1: classid 1:10 htb rate {kbit}kbit ceil {kbit}kbit",
        f"class add dev {dev} parent 1: classid 1:20 htb rate 1gbit",
        f"qdisc add dev {dev} parent 1:10 handle 10: bfifo limit {buffer_bytes}",
        f"filter add dev {dev} parent 1: protocol ip prio 1 u32 match ip protocol 17 0xff "
        "flowid 1:10",
    ):
        subprocess.run(["tc", *command.split()], check=True, capture_output=True)


def _count_media_packets(receiver: RTCRtpReceiver, count: list[int]) -> None:
    """Count the media (not retransmission) packets reaching ``receiver``.

    aiortc's inbound-rtp statistics give one entry per receiver, and its retransmission
    stream's overwrites the media stream's; so the test counts at the RTP handler.
    """
    original = receiver._handle_rtp_packet

    async def counting(packet: RtpPacket, arrival_time_ms: int) -> None:
        if packet.payload_type in receiver._RTCRtpReceiver__codecs:  # type: ignore[attr-defined]
            codec = receiver._RTCRtpReceiver__codecs[packet.payload_type]  # type: ignore[attr-defined]
            if not codec.mimeType.lower().endswith("/rtx"):
                count[0] += 1
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = counting  # type: ignore[method-assign]


def _camera() -> CountingRunner:
    runner = CountingRunner(
        "teacher",
        "video",
        SyntheticCamera(640, 360, FPS, "teacher"),
        VideoEncoder(640, 360, FPS, TOP_BPS),
        float(FPS),
        FrameBus("teacher", "video"),
        asyncio.get_running_loop(),
        width=640,
        height=360,
    )
    runner.keyframe_requests = []
    return runner


async def _adapt(up: Uplink) -> None:
    """The lesson session's loop: apply the adapter's decisions to the encoder."""
    while True:
        await asyncio.sleep(ADAPT_TICK_S)
        for name, bps in up.adapter.step(time.monotonic()).items():
            assert name == "teacher"
            up.runner.set_bitrate(bps)


async def _run(
    lesson: Lesson, runners: list[SourceRunner], body: Callable[[Uplink], Awaitable[None]]
) -> None:
    runner = _camera()
    runner.start()
    runners.append(runner)
    adapter = RateAdapter()
    top = adapter.add("teacher", "teacher", TOP_BPS, NETWORK)
    assert top.current == TOP_BPS
    meter = RateMeter()

    def on_estimate(name: str, bps: int) -> None:
        # As the session feeds the adapter: with what the encoder sent over the last 2 s.
        now = time.monotonic()
        adapter.estimate(name, bps, now, meter.rate(now, runner.bus.bytes) or 0)

    url = lesson.placement.api_url
    pub_session, sub_session = JanusSession(url), JanusSession(url)
    await pub_session.start()
    await sub_session.start()
    lead = JanusPublisher(
        pub_session,
        lesson.placement,
        "lead-1",
        {"teacher": runner},
        ["teacher"],
        on_estimate=on_estimate,
    )
    up = Uplink(runner, adapter, lead)
    loop = asyncio.get_running_loop()
    watcher = JanusPublisher(sub_session, lesson.placement, "observer", {}, [])
    subscriber: JanusSubscriber | None = None
    adapting: asyncio.Task[None] | None = None

    def on_frame(kind: str, frame: JitterFrame) -> None:
        up.frames.append(loop.time())

    try:
        await lead.start()
        # The estimator's hook is installed; a second one, for the test, sees the same reports.
        aiortc_seam.on_receiver_report(
            lead.senders["teacher"], lambda r: up.reports.append((loop.time(), r))
        )
        await watcher.start()
        feed = await watcher.feeds.wait_for("lead-1", ["teacher"], 10)
        sub = Subscription(
            source_classroom="lead-1",
            track="teacher",
            kind="video",
            width=640,
            height=360,
            fps=FPS,
        )
        subscriber = JanusSubscriber(
            sub_session, lesson.placement, feed, [sub], tap=lambda _s: on_frame
        )
        await subscriber.start()
        up.subscriber = subscriber
        for remote in subscriber.received.values():
            _count_media_packets(remote.receiver, up.received)
        adapting = asyncio.create_task(_adapt(up))
        await body(up)
    finally:
        if adapting is not None:
            adapting.cancel()
            await asyncio.gather(adapting, return_exceptions=True)
        if subscriber is not None:
            await subscriber.stop()
        await watcher.stop()
        await lead.stop()
        await pub_session.stop()
        await sub_session.stop()


def _sent_kbps(runner: CountingRunner, seconds: float) -> Callable[[], Awaitable[int]]:
    async def measure() -> int:
        before, began = runner.bus.bytes, time.monotonic()
        await asyncio.sleep(seconds)
        return int((runner.bus.bytes - before) * 8 / (time.monotonic() - began) / 1000)

    return measure


async def test_an_open_uplink_keeps_the_camera_at_its_top_level(
    start_lesson: StartLesson, runners: list[SourceRunner]
) -> None:
    lesson = await start_lesson()

    async def body(up: Uplink) -> None:
        await asyncio.sleep(2)
        kbps = await _sent_kbps(up.runner, 8)()
        now = asyncio.get_running_loop().time()
        assert up.reports, "Janus sent the publisher no receiver reports"
        assert up.adapter.history == [], f"the open uplink moved the camera: {up.adapter.history}"
        assert up.adapter.senders["teacher"].current == TOP_BPS
        assert up.delivered_fps(now) >= 0.8 * FPS, f"delivery {up.delivered_fps(now)} fps"
        assert kbps > 0.7 * TOP_BPS / 1000, f"the camera sent only {kbps} kbps"
        print(f"open uplink: camera {kbps} kbps, {up.delivered_fps(now):.1f} fps delivered")

    await _run(lesson, runners, body)


async def test_a_narrowed_uplink_steps_the_camera_down_and_delivery_recovers(
    start_lesson: StartLesson, runners: list[SourceRunner], shaping: list[str]
) -> None:
    lesson = await start_lesson()
    veth = lesson.janus._veth  # the host's end: its egress is the publisher's uplink

    async def body(up: Uplink) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(2)
        before_kbps = await _sent_kbps(up.runner, 3)()
        assert up.adapter.senders["teacher"].current == TOP_BPS
        shaping.append(veth)
        _narrow_udp(veth, SHAPED_KBIT)
        shaped_at = loop.time()
        while up.adapter.senders["teacher"].current == TOP_BPS:
            assert loop.time() - shaped_at < 8, (
                f"still at the top level 8 s after the uplink narrowed; reports: "
                f"{[r for _, r in up.reports[-4:]]}"
            )
            await asyncio.sleep(0.1)
        stepped_after = loop.time() - shaped_at
        assert sum(r.nacked for t, r in up.reports if t > shaped_at) > 0, (
            "Janus's NACKs never reached the sender"
        )
        # Delivery recovers: Janus loses (almost) nothing, and the subscriber receives
        # nearly every packet the camera sends.
        while up.loss(loop.time()) > 0.02 or up.delivery(loop.time()) < 0.95:
            assert loop.time() - shaped_at < 15, (
                f"delivery did not recover: Janus lost {up.loss(loop.time()):.0%}, the "
                f"subscriber got {up.delivery(loop.time()):.0%}; levels {up.adapter.history}"
            )
            await up.sample(loop.time())
            await asyncio.sleep(0.25)
        recovered_after = loop.time() - shaped_at
        after_kbps = await _sent_kbps(up.runner, 3)()
        level = up.adapter.senders["teacher"].current
        assert level < SHAPED_KBIT * 1000, f"settled at {level} bps, over {SHAPED_KBIT} kbit"
        assert after_kbps < SHAPED_KBIT, f"the camera still sends {after_kbps} kbps"
        # Whole frames take longer to come back to the subscriber (its jitter buffer
        # skips the holes the loss left a packet at a time): reported, not asserted.
        while up.delivered_fps(loop.time()) < 0.8 * FPS and loop.time() - shaped_at < 20:
            await asyncio.sleep(0.2)
        frames_after = loop.time() - shaped_at
        levels = [(round(t - shaped_at, 1), bps) for t, _, bps in up.adapter.history]
        print(
            f"narrowed uplink ({SHAPED_KBIT} kbit): camera {before_kbps} -> {after_kbps} kbps; "
            f"stepped down {stepped_after:.1f} s after shaping; packets delivered again after "
            f"{recovered_after:.1f} s; {up.delivered_fps(loop.time()):.1f} whole frames/s after "
            f"{frames_after:.1f} s; levels (s after shaping, bps) {levels}"
        )

    await _run(lesson, runners, body)
