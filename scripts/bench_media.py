"""bench-media: the media plane under loss and shaping, and what the director costs.

Loss: a lead classroom's real session (synthetic 720p30 teacher camera and microphone,
the agent's own encoders) publishes to the controller's relay; a receiving classroom's
real session subscribes through an impairing UDP proxy that drops 5 % of the datagrams
in each direction at random. The figures are the receiver's decoded frames per second
of the lead camera (distinct burned-in frame counters, so a frozen picture does not
count) and the longest hole in its decoded audio.

Shaping: the relay runs in its own network namespace behind a veth pair; after a few
seconds at the top rung the lead's uplink is shaped with tc tbf to half the profile's
top rung. The figures are the seconds until the rate adapter has settled on a lower
rung that fits (and stays there), and the longest hole in the audio the relay received.

Director: activity detection on three cameras at 5 fps (scripts/bench_director.py).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import pathlib
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import av  # noqa: E402

from controller.relay.room import LessonRelay  # noqa: E402
from edge_agent.profile import load_profile  # noqa: E402
from edge_agent.recording.lesson_recorder import LessonRecorder  # noqa: E402
from edge_agent.session import LessonSession  # noqa: E402
from edge_agent.sources import MediaSource, build_runner  # noqa: E402
from protocols import envelope  # noqa: E402
from protocols.media import aiortc_seam  # noqa: E402
from protocols.messages import Body, JoinLesson, SdpAnswer, SdpOffer, Subscription  # noqa: E402
from protocols.network_profile import NetworkProfile, Rung  # noqa: E402

SYNTHETIC = ROOT / "hardware_profiles" / "synthetic.toml"
LEAD, RECEIVER = "city-1-101", "village-1-201"
CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+) (\d+)( typ host.*)$", re.M)
# The bench's ladder: the synthetic teacher camera is 720p30 at 2 Mbps.
LADDER = NetworkProfile(
    name="bench",
    classroom_cap_kbps=3000,
    audio_kbps=48,
    ladder=(
        Rung(name="720p", width=1280, height=720, kbps=2000),
        Rung(name="540p", width=960, height=540, kbps=1000),
        Rung(name="360p", width=640, height=360, kbps=500),
    ),
)

Rewrite = Callable[[str], str]


def requester(
    relay: LessonRelay, classroom: str, rewrite: Rewrite | None = None
) -> Callable[[Body, float], Awaitable[envelope.Envelope]]:
    """What the control link does for a session: the offer to the relay, its answer back."""

    async def request(body: Body, timeout: float) -> envelope.Envelope:
        assert isinstance(body, SdpOffer)
        sdp = await relay.answer(classroom, body.sdp, body.tracks)
        if rewrite is not None:
            sdp = rewrite(sdp)
        return envelope.make(SdpAnswer(lesson_id=body.lesson_id, sdp=sdp), "controller")

    return request


class LossyProxy(asyncio.DatagramProtocol):
    """Forwards one client's datagrams to ``upstream`` and back, dropping ``loss`` of each."""

    def __init__(self, loss: float, seed: int = 5) -> None:
        self.upstream: tuple[str, int] | None = None
        self.loss = loss
        self.rng = random.Random(seed)
        self.transport: asyncio.DatagramTransport | None = None
        self.client: tuple[str, int] | None = None
        self.back: asyncio.DatagramTransport | None = None
        self.forwarded = self.dropped = 0
        self._opening: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _pass(self) -> bool:
        if self.rng.random() < self.loss:
            self.dropped += 1
            return False
        self.forwarded += 1
        return True

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.client = addr
        if self.upstream is None:
            return
        if self.back is None:
            if self._opening is None:
                self._opening = asyncio.ensure_future(self._open_back(data))
            return
        if self._pass():
            self.back.sendto(data, self.upstream)  # type: ignore[arg-type]

    async def _open_back(self, first: bytes) -> None:
        proxy = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if proxy.transport is not None and proxy.client and proxy._pass():
                    proxy.transport.sendto(data, proxy.client)

        loop = asyncio.get_running_loop()
        self.back, _ = await loop.create_datagram_endpoint(Back, local_addr=("127.0.0.1", 0))
        if self.upstream is not None:
            self.back.sendto(first, self.upstream)


def sources(names: list[str], loop: asyncio.AbstractEventLoop) -> dict[str, MediaSource]:
    """Started synthetic runners of the shipped profile."""
    profile = load_profile(SYNTHETIC).profile
    out = {n: build_runner(profile.device(n), profile, loop) for n in names}
    for runner in out.values():
        runner.start()
    return out


def lead_session(
    lesson: str, srcs: dict[str, MediaSource], relay_or_request: Any, tmp: pathlib.Path
) -> LessonSession:
    """The lead classroom's session publishing teacher and microphone."""
    now = time.time()
    join = JoinLesson(
        lesson_id=lesson,
        role="lead",
        publish=list(srcs),
        subscribe=[],
        start_at=now,
        end_at=now + 3600,
    )
    recorder = LessonRecorder(tmp / LEAD, lesson, LEAD, 10.0)
    return LessonSession(
        LEAD,
        join,
        srcs,
        recorder,
        relay_or_request,
        network=LADDER,
        devices={"teacher": ("teacher", 2_000_000)},
    )


async def loss_bench(seconds: float, loss: float) -> dict[str, Any]:
    """Receiver behind a lossy proxy: decoded fps of the lead camera, audio holes."""
    loop = asyncio.get_running_loop()
    aiortc_seam.pin_host_addresses(["127.0.0.1"])
    relay = LessonRelay("bench-loss")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-media-"))
    srcs = sources(["teacher", "mic"], loop)
    lead = lead_session("bench-loss", srcs, requester(relay, LEAD), tmp)
    proxy = LossyProxy(loss)
    transport, _ = await loop.create_datagram_endpoint(lambda: proxy, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]

    def via_proxy(sdp: str) -> str:
        match = CANDIDATE.search(sdp)
        assert match is not None, "relay answer has no host candidate"
        proxy.upstream = (match.group(2), int(match.group(3)))
        return CANDIDATE.sub(lambda m: f"{m.group(1)}127.0.0.1 {port}{m.group(4)}", sdp)

    now = time.time()
    join = JoinLesson(
        lesson_id="bench-loss",
        role="receiver",
        publish=[],
        subscribe=[
            Subscription(
                source_classroom=LEAD, track="teacher", kind="video", width=1280, height=720, fps=30
            ),
            Subscription(source_classroom=LEAD, track="mic", kind="audio"),
        ],
        start_at=now,
        end_at=now + 3600,
    )
    audio_pts: list[int] = []

    def on_decoded(sub: Subscription, frame: av.VideoFrame | av.AudioFrame) -> None:
        if isinstance(frame, av.AudioFrame) and frame.pts is not None:
            audio_pts.append(frame.pts)

    receiver = LessonSession(
        RECEIVER,
        join,
        {},
        LessonRecorder(tmp / RECEIVER, "bench-loss", RECEIVER, 10.0),
        requester(relay, RECEIVER, via_proxy),
        on_decoded=on_decoded,
    )
    try:
        await lead.connect()
        await receiver.connect()
        await asyncio.wait_for(receiver.connected.wait(), 15)
        await asyncio.sleep(2.0)
        receiver.start_counting()
        audio_pts.clear()
        started = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        report = {r.track: r for r in receiver.report()}
        fps = report["teacher"].frames / elapsed
        holes = [b - a for a, b in itertools.pairwise(audio_pts)]
        frame_ms = 20.0
        gap_ms = max((h / 48.0 for h in holes), default=float("inf")) - frame_ms
        return {
            "loss5_fps": round(fps, 1),
            "loss5_audio_gap_ms": round(max(gap_ms, 0.0), 1),
            "loss5_audio_frames": len(audio_pts),
            "loss5_dropped_pct": round(
                100 * proxy.dropped / max(1, proxy.dropped + proxy.forwarded), 2
            ),
        }
    finally:
        await receiver.close()
        await lead.close()
        await relay.close()
        transport.close()
        for runner in srcs.values():
            runner.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    """Run the benchmarks and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--skip-shaping", action="store_true")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    figures.update(asyncio.run(loss_bench(args.seconds, 0.05)))
    print(
        f"5% loss: receiver decodes {figures['loss5_fps']} fps of the lead camera; "
        f"longest audio hole {figures['loss5_audio_gap_ms']} ms"
    )
    if not args.skip_shaping:
        from bench_shaping import shaping_bench

        figures.update(shaping_bench(LADDER))
        print(
            f"shaped to half the top rung: settled in {figures['shaped_settle_s']} s on "
            f"{figures.get('shaped_rung')}; longest audio hole "
            f"{figures.get('shaped_audio_gap_ms')} ms"
        )
    from bench_director import director_cpu_pct

    director = director_cpu_pct(10.0)
    figures["director_cpu_pct"] = director["director_cpu_pct"]
    print(f"director on 3 cameras at 5 fps: {figures['director_cpu_pct']} % of one core")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
