"""After a loss burst a receiving classroom sees whole pictures again within a few seconds.

Two real aiortc peers on loopback: a classroom's camera (synthetic, counter and capture
time burned in, the agent's own H.264 encoder at a congested 180 kbps) sends through a
lossy UDP link to a receiver whose jitter buffer is the agent's. The link drops most or
all datagrams for 1.5 s, then none. The receiver decodes as a classroom does, and each
decoded picture is compared with the picture the camera drew for it: what a person sees.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from benchlib.lossy_udp import LossyUdpLink

from edge_agent.devices.synthetic import SyntheticCamera
from edge_agent.media import barcode
from edge_agent.media.bus import FrameBus
from edge_agent.media.encoders import VideoEncoder
from edge_agent.media.source_runner import SourceRunner
from edge_agent.media.tracks import EncodedTrack
from protocols.media import aiortc_seam
from protocols.media.rtc_config import peer_configuration

pytestmark = pytest.mark.timeout(90)

WIDTH, HEIGHT, FPS = 320, 240, 15
BITRATE = 180_000  # where the rate adapter steps a camera down to under congestion
GOP_S = 60.0  # no periodic keyframe in the window: only a keyframe request can help
# Clean pictures measure 48-49 dB against the camera's; after a skip, until the keyframe,
# most have even the burned-in code too damaged to read, the rest measured up to 16 dB.
WHOLE_PSNR_DB = 35.0
STEADY_FRAMES = 10  # whole, in a row, to count as the picture being back
RECOVERY_BOUND_S = 2.5
WAIT_AFTER_S = 20.0  # how long to watch after the burst (aiortc alone: over 10 s)


@pytest.fixture
def loopback_ice() -> Iterator[None]:
    """ICE on 127.0.0.1 only (aioice skips loopback by default)."""
    with aiortc_seam.host_addresses(["127.0.0.1"]):
        yield


@dataclass
class Seen:
    """One decoded picture: when it arrived, when it was captured, and whether whole."""

    at: float
    capture_ms: int
    psnr_db: float

    @property
    def whole(self) -> bool:
        """The picture the camera drew, to the eye."""
        return self.psnr_db >= WHOLE_PSNR_DB


def _psnr(decoded: av.VideoFrame, reference: av.VideoFrame) -> float:
    a = decoded.to_ndarray(format="yuv420p")[:HEIGHT].astype(np.float32)
    b = reference.to_ndarray(format="yuv420p")[:HEIGHT].astype(np.float32)
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * float(np.log10(255.0**2 / mse))


async def _watch(track: MediaStreamTrack, seen: list[Seen]) -> None:
    """Decode as a receiving classroom does; judge each picture against the camera's."""
    camera = SyntheticCamera(WIDTH, HEIGHT, FPS, "teacher")
    loop = asyncio.get_running_loop()
    try:
        while True:
            frame = await track.recv()
            assert isinstance(frame, av.VideoFrame)
            luma = frame.to_ndarray(format="yuv420p")[:HEIGHT]
            stamp = barcode.read(luma)
            if stamp is None:  # the code itself is damaged: not a whole picture
                seen.append(Seen(loop.time(), -1, 0.0))
                continue
            seen.append(Seen(loop.time(), stamp[1], _psnr(frame, camera.frame(*stamp))))
    except MediaStreamError:
        return


def _back_at(seen: list[Seen], after: float, after_ms: float) -> float | None:
    """When the first of ``STEADY_FRAMES`` whole pictures, captured after ``after_ms``,
    arrived (loop time), or None."""
    fresh = [s for s in seen if s.at >= after and s.capture_ms >= after_ms]
    for i in range(len(fresh) - STEADY_FRAMES + 1):
        if all(s.whole for s in fresh[i : i + STEADY_FRAMES]):
            return fresh[i].at
    return None


def _h264() -> list[Any]:
    return [
        c
        for c in RTCRtpSender.getCapabilities("video").codecs
        if c.mimeType.lower() in ("video/h264", "video/rtx")
    ]


# name: (share of datagrams lost both ways for BURST_S, then seconds the way back, which
# carries the receiver's NACKs and PLIs, stays cut after media flows cleanly again)
BURSTS = {
    # the receiver notices the hole when packets flow again, and the one NACK it sends
    # then brings every lost packet back: nothing to skip
    "blackout": (1.0, 0.0),
    # the receiving school's uplink, busy with its own camera, clears half a second
    # later: that NACK is lost, and aiortc never asks again
    "blackout-nack-lost": (1.0, 0.5),
    # a congested queue lets some packets through: holes all through the burst, their
    # NACKs lost too
    "congestion-nack-lost": (0.85, 0.5),
}
BURST_S = 1.5


@pytest.mark.parametrize("burst", list(BURSTS))
async def test_whole_pictures_come_back_soon_after_a_loss_burst(
    loopback_ice: None, burst: str
) -> None:
    loop = asyncio.get_running_loop()
    runner = SourceRunner(
        "teacher",
        "video",
        SyntheticCamera(WIDTH, HEIGHT, FPS, "teacher"),
        VideoEncoder(WIDTH, HEIGHT, FPS, BITRATE, gop_seconds=GOP_S),
        float(FPS),
        FrameBus("teacher", "video"),
        loop,
        width=WIDTH,
        height=HEIGHT,
    )
    keyframe_requests: list[float] = []

    def request_keyframe() -> None:
        keyframe_requests.append(loop.time())
        runner.request_keyframe()

    link = LossyUdpLink()
    await link.start()
    sender_pc = RTCPeerConnection(peer_configuration())
    receiver_pc = RTCPeerConnection(peer_configuration())
    seen: list[Seen] = []
    watching: asyncio.Task[None] | None = None
    runner.start()
    try:
        track = EncodedTrack(runner.bus, request_keyframe)
        sending = sender_pc.addTransceiver(track, direction="sendonly")
        sending.setCodecPreferences(_h264())
        aiortc_seam.use_packer(sending.sender)
        aiortc_seam.on_keyframe_request(sending.sender, track.request_keyframe)
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        offer = sender_pc.localDescription
        offer.sdp = link.sdp_from("a", offer.sdp)
        await receiver_pc.setRemoteDescription(offer)
        [receiving] = receiver_pc.getTransceivers()
        aiortc_seam.release_on_marker(receiving.receiver)
        buffer = getattr(receiving.receiver, aiortc_seam._JITTER_BUFFER)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        answer = receiver_pc.localDescription
        answer.sdp = link.sdp_from("b", answer.sdp)
        await sender_pc.setRemoteDescription(answer)
        watching = asyncio.create_task(_watch(receiving.receiver.track, seen))

        # a steady picture first
        started = loop.time()
        while _back_at(seen, started, 0) is None:
            assert loop.time() - started < 15, f"no whole pictures before the burst: {seen[-5:]}"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)
        before = list(seen)
        assert all(s.whole for s in before[-2 * FPS :]), (
            f"pictures not whole on a clean link: {[round(s.psnr_db, 1) for s in before[-30:]]}"
        )

        loss, back_cut_s = BURSTS[burst]
        link.a_to_b.loss = link.b_to_a.loss = loss
        await asyncio.sleep(BURST_S)
        link.a_to_b.loss, link.b_to_a.loss = 0.0, 1.0 if back_cut_s else 0.0
        # measured from here: media reaches the receiver cleanly again
        burst_end, burst_end_ms = loop.time(), time.time() * 1000.0
        loop.call_later(back_cut_s, setattr, link.b_to_a, "loss", 0.0)
        requests_before = len([t for t in keyframe_requests if t < burst_end])

        back: float | None = None
        while back is None and loop.time() - burst_end < WAIT_AFTER_S:
            await asyncio.sleep(0.2)
            back = _back_at(seen, burst_end, burst_end_ms)
        after = [s for s in seen if s.at >= burst_end]
        figure = "never" if back is None else f"{back - burst_end:.2f} s"
        print(
            f"{burst}: whole pictures again {figure} after the burst; skipped holes "
            f"{getattr(buffer, 'skipped_holes', '-')}; keyframe requests after it "
            f"{len(keyframe_requests) - requests_before}; pictures decoded after it "
            f"{len(after)}, whole {sum(s.whole for s in after)}; link dropped "
            f"{link.a_to_b.dropped}/{link.b_to_a.dropped} datagrams; clean pictures "
            f"{min(s.psnr_db for s in before[-2 * FPS :]):.1f} dB and up, broken ones up to "
            f"{max((s.psnr_db for s in after if not s.whole), default=0.0):.1f} dB"
        )
        assert link.a_to_b.forwarded > 100, "the media did not cross the lossy link"
        assert back is not None and back - burst_end < RECOVERY_BOUND_S, (
            f"whole pictures again {figure} after a {BURST_S} s {burst} "
            f"(bound {RECOVERY_BOUND_S} s)"
        )
    finally:
        if watching is not None:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
        await sender_pc.close()
        await receiver_pc.close()
        runner.stop()
        link.close()
