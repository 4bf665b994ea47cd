"""Live push of a lesson over RTMP, to a real nginx-rtmp server on loopback.

The synthetic classroom's own runners (the packets the agent sends) feed the push; the
server records what it receives, and ffprobe and PyAV check that recording: H.264 at the
camera's size passed through, AAC 48 kHz mono, whole, decodable and in sync. The unhappy
path starts with no server at all, then takes the server away mid-lesson: the push says
why it is retrying, never raises, and goes live again by itself each time.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import logging
import pathlib
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import pytest
from helpers import needs

from edge_agent.media import barcode
from edge_agent.media.bus import FrameBus
from edge_agent.media.rtmp_child import _Clock
from edge_agent.media.rtmp_push import RtmpPush
from edge_agent.profile import HardwareProfile, load_profile
from edge_agent.sources import MediaSource, build_runner
from protocols.media.encoded_frame import EncodedFrame
from tests.peers import nginx_rtmp

pytestmark = [
    pytest.mark.e2e,
    needs(nginx_rtmp.available(), nginx_rtmp.why_unavailable()),
]

PROFILE = pathlib.Path(__file__).resolve().parents[2] / "hardware_profiles" / "synthetic.toml"
SECRET = "s3cr3t-push-key"


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``predicate()`` holds; fails naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"timed out after {timeout} s: {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def ffprobe(path: pathlib.Path) -> dict[str, Any]:
    """ffprobe's streams (video frames decoded and counted) and format, as JSON."""
    assert path.exists() and path.stat().st_size > 0, f"the server recorded nothing: {path}"
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, f"ffprobe could not read {path}: {result.stderr}"
    assert not result.stderr.strip(), f"ffprobe found errors in {path}: {result.stderr}"
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def streams(info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one video and the one audio stream of an ffprobe report."""
    by_type = {s["codec_type"]: s for s in info["streams"]}
    assert set(by_type) == {"video", "audio"}, f"expected video + audio: {info['streams']}"
    return by_type["video"], by_type["audio"]


class Classroom:
    """The synthetic teacher camera and room microphone, running."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        profile: HardwareProfile = load_profile(PROFILE).profile
        self.camera: MediaSource = build_runner(profile.device("teacher"), profile, loop)
        self.mic: MediaSource = build_runner(profile.device("mic"), profile, loop)
        # The microphone's capture times by frame counter, for the sync check.
        self.mic_capture_ms: dict[int, float] = {}
        self.mic.bus.subscribe(self._note)

    def _note(self, frame: EncodedFrame) -> None:
        # Only the latest run of the microphone counts (start_mic_late restarts it).
        if frame.meta["counter"] == 0:
            self.mic_capture_ms.clear()
        self.mic_capture_ms[frame.meta["counter"]] = frame.capture_ms

    def push(self, url: str, **kwargs: Any) -> RtmpPush:
        """A push of this classroom's camera and microphone."""
        return RtmpPush(
            url,
            self.camera.bus,
            self.mic.bus,
            width=self.camera.width,
            height=self.camera.height,
            fps=self.camera.fps,
            request_keyframe=self.camera.request_keyframe,
            **kwargs,
        )

    def __enter__(self) -> Classroom:
        self.camera.start()
        self.mic.start()
        return self

    async def start_mic_late(self, delay_s: float) -> None:
        """Restart the microphone ``delay_s`` later, its pts starting from 0 again."""
        self.mic.stop()
        await asyncio.sleep(delay_s)
        self.mic.start()

    def __exit__(self, *exc: object) -> None:
        self.camera.stop()
        self.mic.stop()


def av_offset_s(path: pathlib.Path, mic_capture_ms: dict[int, float]) -> list[float]:
    """How far each microphone click lands from where the wall clock puts it, in seconds.

    The first video frame's burned-in capture time anchors the file's timeline to the wall
    clock; the synthetic microphone clicks at the start of every 50th 20 ms frame, whose
    capture times the test noted. A positive offset means the sound is late.
    """
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        anchor: tuple[float, int] | None = None
        assert video.time_base is not None
        for picture in container.decode(video):
            code = barcode.read(picture.to_ndarray(format="gray"))
            if code is not None and picture.pts is not None:
                anchor = (float(picture.pts * video.time_base), code[1])
                break
    assert anchor is not None, "no readable frame code in the pushed video"
    t0_ms = anchor[1] - anchor[0] * 1000.0
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        assert audio.time_base is not None
        chunks, first_s = [], None
        for frame in container.decode(audio):
            if first_s is None and frame.pts is not None:
                first_s = float(frame.pts * audio.time_base)
            chunks.append(frame.to_ndarray().reshape(-1))
    assert first_s is not None and chunks, "no decodable audio"
    pcm = np.abs(np.concatenate(chunks))
    # Clicks are ~0.9 of full scale, the tone ~0.25: onsets where the level jumps.
    loud = np.flatnonzero(pcm > 0.6)
    onsets = [i for k, i in enumerate(loud) if k == 0 or i - loud[k - 1] > 4800]
    # The synthetic microphone clicks on each whole second of its capture clock.
    first_ms, last_ms = min(mic_capture_ms.values()), max(mic_capture_ms.values())
    clicks = [s * 1000.0 for s in range(int(first_ms // 1000), int(last_ms // 1000) + 1)]
    offsets: list[float] = []
    for onset in onsets:
        t_ms = (first_s + onset / 48000) * 1000.0
        wall = t0_ms + t_ms
        nearest = min(clicks, key=lambda c: abs(c - wall))
        offsets.append(float(wall - nearest) / 1000.0)
    return offsets


@pytest.mark.timeout(60)
async def test_lesson_is_pushed_and_recorded_by_the_server(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge_agent.media.rtmp_push")
    loop = asyncio.get_running_loop()
    server = nginx_rtmp.NginxRtmp(directory=tmp_path / "server")
    server.start()
    try:
        with Classroom(loop) as room:
            push = room.push(server.url("lesson") + f"?auth_key={SECRET}")
            await push.start()
            live_s = await wait_for(lambda: push.state == "live", 10, "push live")
            # The microphone's clock restarts 0.4 s into the push: its pts no longer say
            # where its sound belongs, only its capture times do.
            await room.start_mic_late(0.4)
            await asyncio.sleep(3.8)
            during = push.status()
            await push.stop()
        # The server closes its recording when the publisher leaves.
        await asyncio.sleep(0.3)
    finally:
        server.stop()
    print(f"live in {live_s:.2f} s; {during}")
    assert push.state == "stopped"
    status = push.status()
    assert status["errors"] == 0 and status["last_error"] == "", status
    assert status["video_packets"] >= 100 and status["audio_packets"] >= 150, status
    assert SECRET not in json.dumps(status) and SECRET not in caplog.text
    assert "***" in status["url"]

    recording = server.recording("lesson")
    info = ffprobe(recording)
    video, audio = streams(info)
    assert video["codec_name"] == "h264"
    assert (video["width"], video["height"]) == (room.camera.width, room.camera.height)
    assert audio["codec_name"] == "aac"
    assert int(audio["sample_rate"]) == 48000 and audio["channels"] == 1
    duration = float(info["format"]["duration"])
    assert duration >= 3.0, f"only {duration:.2f} s recorded"
    expected = duration * room.camera.fps
    decoded = int(video["nb_read_frames"])
    assert decoded >= 0.8 * expected, f"{decoded} frames decoded, {expected:.0f} expected"
    # The same packets the agent encoded: passed through, not re-encoded.
    assert video["profile"] == "Constrained Baseline"

    offsets = av_offset_s(recording, room.mic_capture_ms)
    print(f"A/V offsets at the clicks: {[round(o * 1000) for o in offsets]} ms")
    assert len(offsets) >= 3, f"expected a click a second, found {len(offsets)}"
    assert max(abs(o) for o in offsets) < 0.08, f"audio out of sync: {offsets}"


@pytest.mark.timeout(60)
async def test_push_retries_until_the_server_is_there_and_after_it_goes_away(
    tmp_path: pathlib.Path,
) -> None:
    loop = asyncio.get_running_loop()
    port = nginx_rtmp.free_port()
    server = nginx_rtmp.NginxRtmp(port=port, directory=tmp_path / "server")
    try:
        with Classroom(loop) as room:
            push = room.push(server.url("lesson"))
            await push.start()
            # Nothing listens: the push says so and keeps trying, nothing raises.
            await wait_for(lambda: push.state == "retrying", 5, "retrying with no server")
            assert "connection refused" in push.last_error
            assert f"127.0.0.1:{port}" in push.last_error
            await wait_for(lambda: push.errors >= 2, 5, "a second attempt")

            server.start()
            back_s = await wait_for(lambda: push.state == "live", 10, "live once the server is up")
            await asyncio.sleep(1.0)
            # The server goes away mid-lesson, then comes back.
            server.stop()
            await wait_for(lambda: push.state == "retrying", 5, "retrying after the server left")
            assert "127.0.0.1" in push.last_error, push.last_error
            errors = push.errors
            server.start()
            again_s = await wait_for(lambda: push.state == "live", 10, "live again")
            assert push.errors == errors
            await asyncio.sleep(2.2)
            status = push.status()
            await push.stop()
        await asyncio.sleep(0.3)
    finally:
        server.stop()
    print(f"live {back_s:.2f} s after the server started, again in {again_s:.2f} s; {status}")
    assert status["reconnects"] >= 3 and status["errors"] >= 3, status
    assert push.state == "stopped"

    # The second publish overwrote the first recording (record_unique off): it is whole.
    info = ffprobe(server.recording("lesson"))
    video, audio = streams(info)
    assert video["codec_name"] == "h264" and audio["codec_name"] == "aac"
    assert float(info["format"]["duration"]) >= 1.8
    assert int(video["nb_read_frames"]) >= 0.8 * float(info["format"]["duration"]) * 30


@pytest.mark.timeout(30)
async def test_a_server_that_never_answers_does_not_block_the_agent(tmp_path: pathlib.Path) -> None:
    # A server that accepts the TCP connection and then says nothing: PyAV would hold
    # the GIL through the RTMP handshake forever; the push keeps that in its own process.
    loop = asyncio.get_running_loop()
    with socket.socket() as silent, Classroom(loop) as room:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        push = room.push(f"rtmp://127.0.0.1:{port}/live/lesson", connect_timeout_s=1.5)
        await push.start()
        worst = 0.0
        started = time.monotonic()
        while push.state != "retrying":
            assert time.monotonic() - started < 8, f"still {push.state} after 8 s"
            before = time.monotonic()
            await asyncio.sleep(0.01)
            worst = max(worst, time.monotonic() - before - 0.01)
        await push.stop()
    print(f"worst event-loop lag while the handshake hung: {worst * 1000:.1f} ms")
    assert worst < 0.1, f"the event loop stalled for {worst:.2f} s"
    assert "no answer from the server within 1.5 s" in push.last_error, push.last_error
    assert push.state == "stopped"


def test_url_must_be_rtmp_and_its_key_stays_secret() -> None:
    bus = FrameBus("teacher", "video")
    with pytest.raises(ValueError, match="not an RTMP URL"):
        RtmpPush("http://example.com/live/key", bus)
    push = RtmpPush(f"rtmp://live.example.com:1935/app/{SECRET}?sign={SECRET}", bus)
    assert push.where == "rtmp://live.example.com:1935/app/***"
    assert SECRET not in json.dumps(push.status())


def test_clock_keeps_pts_spacing_and_follows_the_capture_clock() -> None:
    tb = fractions.Fraction(1, 48000)
    clock = _Clock(t0_ms=1000.0)
    # Delivered in 100 ms chunks: capture times jitter late, the pts spacing is kept.
    times = [clock.ms(i * 960, tb, 1000.0 + (i // 5) * 100 + 100) for i in range(50)]
    assert times == pytest.approx([100.0 + 20 * i for i in range(50)])
    # The source falls 300 ms behind its pts for good: after the window it is moved by the
    # smallest deviation it showed, not by the jittery latest one.
    late = [
        clock.ms(i * 960, tb, 1000.0 + 100 + 20 * i + 300 + (i % 3) * 30) for i in range(50, 90)
    ]
    assert late[0] == pytest.approx(1100.0)
    assert late[-1] == pytest.approx(100 + 20 * 89 + 300)
    # A restart (pts from 0 again) is placed by its capture time at once.
    clock.restart()
    assert clock.ms(0, tb, 5000.0) == pytest.approx(4000.0)
    assert clock.ms(960, tb, 5020.0) == pytest.approx(4020.0)
    # So is a jump of more than two seconds.
    assert clock.ms(960 * 2, tb, 9000.0) == pytest.approx(8000.0)
