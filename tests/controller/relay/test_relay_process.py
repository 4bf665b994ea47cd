"""The built-in relay in its own process: media and viewers through it, its wire, its death
and restart, and no relay process left behind when the controller goes."""

from __future__ import annotations

import asyncio
import fractions
import os
import pathlib
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from helpers import free_port_pair

from controller.metrics.relay import RelayCollector
from controller.relay import ipc
from controller.relay.exceptions import RelayUnavailable
from controller.relay.process import RelayProcess
from controller.relay.room import FeedRef, SignallingError
from protocols.media import aiortc_seam
from protocols.media.h264 import is_keyframe
from protocols.media.rtc_config import peer_configuration
from protocols.messages import TrackMid

pytestmark = pytest.mark.timeout(90)
CLOCK = fractions.Fraction(1, 90000)


def _clip(frames: int = 60, width: int = 160, height: int = 120) -> list[bytes]:
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 30)
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "g": "30", "bf": "0"}
    out = []
    for i in range(frames):
        img = np.full((height * 3 // 2, width), 16 + (i * 7) % 200, np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
        frame.pts = i
        out += [bytes(p) for p in ctx.encode(frame)]
    return out + [bytes(p) for p in ctx.encode(None)]


class _Clip(MediaStreamTrack):
    kind = "video"

    def __init__(self, units: list[bytes]) -> None:
        super().__init__()
        self._units, self._i = units, 0

    async def recv(self) -> av.Packet:  # type: ignore[override]
        await asyncio.sleep(1 / 30)
        packet = av.Packet(self._units[self._i % len(self._units)])
        packet.pts, packet.time_base = self._i * 3000, CLOCK
        self._i += 1
        return packet


def _h264() -> list[object]:
    caps = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in caps if c.mimeType.lower() in ("video/h264", "video/rtx")]


@pytest.fixture
def loopback() -> Iterator[None]:
    with aiortc_seam.host_addresses(["127.0.0.1"]):
        yield


@pytest.fixture
async def relay() -> AsyncIterator[RelayProcess]:
    process = RelayProcess(("127.0.0.1",))
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


async def _until(what: str, predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = pathlib.Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


# --- the wire -----------------------------------------------------------------------------


async def _reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_frames_carry_typed_messages_and_refuse_bad_ones() -> None:
    track = TrackMid(mid="0", track="teacher", kind="video", direction="send", source_classroom="a")
    call = ipc.Answer(lesson="L", classroom="a", sdp="v=0", tracks=[track])
    frame = ipc.encode(ipc.Request(id=7, call=call))
    got = await ipc.read_request(await _reader_of(frame))
    assert got is not None and got.id == 7 and got.call == call
    assert await ipc.read_request(await _reader_of(b"")) is None  # closed between frames
    with pytest.raises(ipc.FrameError, match="inside a frame of"):
        await ipc.read_request(await _reader_of(frame[:-3]))
    with pytest.raises(ipc.FrameError, match="over"):
        await ipc.read_request(await _reader_of(struct.pack(">I", ipc.MAX_FRAME + 1)))
    junk = b'{"kind": "request", "id": 1, "call": {"op": "reboot"}}'
    with pytest.raises(ipc.FrameError, match="not a relay request"):
        await ipc.read_request(await _reader_of(struct.pack(">I", len(junk)) + junk))
    reply = ipc.Reply(id=3, error_kind="signalling", error="no feed")
    assert await ipc.read_from_relay(await _reader_of(ipc.encode(reply))) == reply


# --- media, viewers and figures through the relay process ---------------------------------


async def test_media_and_a_viewer_pass_through_the_relay_process(
    relay: RelayProcess, loopback: None
) -> None:
    lesson = relay.open("L1")
    publisher = RTCPeerConnection(peer_configuration())
    viewer = RTCPeerConnection(peer_configuration())
    received: list[bytes] = []
    keyframe_requests: list[int] = []
    closed: list[str] = []
    try:
        t = publisher.addTransceiver(_Clip(_clip()), direction="sendonly")
        t.setCodecPreferences(_h264())  # type: ignore[arg-type]
        aiortc_seam.use_packer(t.sender)
        aiortc_seam.on_keyframe_request(t.sender, lambda: keyframe_requests.append(1))
        await publisher.setLocalDescription(await publisher.createOffer())
        mid = TrackMid(
            mid=t.mid or "", track="teacher", kind="video", direction="send", source_classroom="a"
        )
        answer = await lesson.answer("a", publisher.localDescription.sdp, [mid])
        await publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        assert [(f.source_classroom, f.track, f.kind) for f in lesson.feeds] == [
            ("a", "teacher", "video")
        ]

        # Errors keep their kind and their words across the process boundary.
        v = viewer.addTransceiver("video", direction="recvonly")
        await viewer.setLocalDescription(await viewer.createOffer())
        with pytest.raises(SignallingError, match=r"no feed a/panel \(it has: a/teacher\)"):
            await lesson.answer_viewer(
                "v1", viewer.localDescription.sdp, [FeedRef("a", "panel", "video")]
            )

        async def on_close() -> None:
            closed.append("v1")

        aiortc_seam.tap_receiver(v.receiver, lambda kind, f: received.append(f.data), decode=False)
        answer = await lesson.answer_viewer(
            "v1", viewer.localDescription.sdp, [FeedRef("a", "teacher", "video")], on_close
        )
        await viewer.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        assert lesson.viewers == ["v1"]
        await _until("30 frames at the viewer", lambda: len(received) >= 30, 20)
        assert is_keyframe(received[0])  # the viewer starts on a keyframe
        assert keyframe_requests, "the new viewer's keyframe request did not reach the publisher"

        await _until(
            "figures a second old at most", lambda: lesson.stats()["a/teacher"]["frames_in"] > 0
        )
        stats = lesson.stats()["a/teacher"]
        assert set(stats) == {
            "frames_in",
            "bytes_in",
            "subscribers",
            "keyframe_requests",
            "dropped",
        }
        assert stats["subscribers"] == 1 and stats["bytes_in"] > 0
        age = lesson.frame_age_s("a", "teacher")
        assert age is not None and 0 <= age < 2.0
        assert lesson.frame_age_s("a", "panel") is None

        assert await lesson.close_viewer("v1")
        assert closed == ["v1"] and lesson.viewers == []  # its bookkeeping ran before
        assert not await lesson.close_viewer("v1")
    finally:
        await publisher.close()
        await viewer.close()
        await lesson.close()
    await relay.refresh()
    assert relay.open("L1").stats() == {}  # closed: a fresh relay has no feeds


async def test_a_bad_offer_is_refused_with_its_reason(relay: RelayProcess) -> None:
    lesson = relay.open("L2")
    pc = RTCPeerConnection(peer_configuration())
    try:
        pc.addTransceiver("video", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        with pytest.raises(SignallingError, match="mid=0 with no entry in 'tracks'"):
            await lesson.answer("a", pc.localDescription.sdp, [])
        with pytest.raises(ValueError):
            await lesson.answer("a", "v=0 garbage", [])
    finally:
        await pc.close()
    assert relay.restarts == 0  # a refused offer does not bring the relay process down
    await relay.refresh()
    await lesson.close()


# --- death and restart --------------------------------------------------------------------


async def test_a_dead_relay_process_is_restarted_and_its_lessons_re_offered(
    relay: RelayProcess, loopback: None
) -> None:
    restarted: list[tuple[list[str], str]] = []
    relay.on_restart = lambda lessons, why: restarted.append((lessons, why))
    lesson = relay.open("L3")
    closed: list[str] = []
    viewer = RTCPeerConnection(peer_configuration())
    publisher = RTCPeerConnection(peer_configuration())
    try:
        t = publisher.addTransceiver(_Clip(_clip(30)), direction="sendonly")
        t.setCodecPreferences(_h264())  # type: ignore[arg-type]
        aiortc_seam.use_packer(t.sender)
        await publisher.setLocalDescription(await publisher.createOffer())
        mid = TrackMid(
            mid=t.mid or "", track="teacher", kind="video", direction="send", source_classroom="a"
        )
        answer = await lesson.answer("a", publisher.localDescription.sdp, [mid])
        await publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        viewer.addTransceiver("video", direction="recvonly")
        await viewer.setLocalDescription(await viewer.createOffer())

        async def on_close() -> None:
            closed.append("v")

        await lesson.answer_viewer(
            "v", viewer.localDescription.sdp, [FeedRef("a", "teacher", "video")], on_close
        )
        first = relay.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await _until("the relay process restarted", lambda: bool(restarted), 10)
        assert restarted == [(["L3"], f"relay process {first} exited with status -9")]
        assert relay.restarts == 1 and relay.pid not in (None, first)
        metrics = RelayCollector(lambda: {}, lambda: relay.restarts).collect()
        samples = {s.name: s.value for m in metrics for s in m.samples}
        assert samples["classbridge_relay_process_restarts_total"] == 1
        assert closed == ["v"] and lesson.viewers == [] and lesson.feeds == []
        # The agent offers again (the orchestrator re-sent its join) and is answered.
        await publisher.close()
        publisher = RTCPeerConnection(peer_configuration())
        t = publisher.addTransceiver(_Clip(_clip(30)), direction="sendonly")
        t.setCodecPreferences(_h264())  # type: ignore[arg-type]
        aiortc_seam.use_packer(t.sender)
        await publisher.setLocalDescription(await publisher.createOffer())
        mid = mid.model_copy(update={"mid": t.mid or ""})
        answer = await lesson.answer("a", publisher.localDescription.sdp, [mid])
        await publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await _until(
            "media again after the restart",
            lambda: bool(lesson.stats().get("a/teacher", {}).get("frames_in")),
            15,
        )
    finally:
        await publisher.close()
        await viewer.close()
        await lesson.close()


async def test_a_stopped_relay_process_times_out_calls_without_holding_the_loop(
    relay: RelayProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("controller.relay.process.CALL_TIMEOUT_S", 1.0)
    pid = relay.pid
    assert pid is not None
    lesson = relay.open("L4")
    os.kill(pid, signal.SIGSTOP)
    try:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        with pytest.raises(RelayUnavailable, match="did not answer snapshot within 1 s"):
            await relay.refresh()
        with pytest.raises(RelayUnavailable, match="did not answer answer_viewer"):
            await lesson.answer_viewer("v", "sdp", [FeedRef("a", "teacher", "video")])
        ticker.cancel()
        assert ticks > 100  # the loop ran on while both calls waited
        assert lesson.stats() == {} and lesson.frame_age_s("a", "teacher") is None
    finally:
        os.kill(pid, signal.SIGCONT)
    await lesson.close()


async def test_a_silent_relay_process_is_killed_and_restarted(
    relay: RelayProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("controller.relay.process.SILENT_S", 3.0)
    restarted: list[tuple[list[str], str]] = []
    relay.on_restart = lambda lessons, why: restarted.append((lessons, why))
    relay.open("L5")
    stopped = relay.pid
    assert stopped is not None
    os.kill(stopped, signal.SIGSTOP)
    await asyncio.sleep(1.5)
    assert relay.restarts == 0  # a moment's silence is not death
    await _until("the silent relay process replaced", lambda: bool(restarted), 10)
    assert restarted == [
        (["L5"], f"relay process {stopped} answered nothing for 3 s and was killed")
    ]
    assert not _alive(stopped) and relay.pid not in (None, stopped)
    await relay.refresh()  # the new one answers


async def test_stop_kills_a_relay_process_that_does_not_exit() -> None:
    process = RelayProcess()
    await process.start()
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # it cannot see the socket close
    started = time.monotonic()
    await process.stop()
    assert not _alive(pid) and time.monotonic() - started < 8
    assert process.restarts == 0  # stopping is not dying


# --- no orphan ---------------------------------------------------------------------------

_PARENT = textwrap.dedent(
    """
    import asyncio, pathlib, sys
    from controller.app.daemon import ControllerConfig, ControllerDaemon

    async def main() -> None:
        config = ControllerConfig(
            state_dir=pathlib.Path(sys.argv[1]), control_port=int(sys.argv[2]), http_port=0
        )
        daemon = ControllerDaemon(config)
        running = asyncio.create_task(daemon.run())  # SIGTERM: stop() and return
        while daemon.relay is None or daemon.http is None or not daemon.http.port:
            await asyncio.sleep(0.05)
        await daemon.relay.start()  # as a lesson's first relay would
        print(daemon.relay.pid, flush=True)
        await running

    asyncio.run(main())
    """
)


def _parent_and_relay(state: pathlib.Path) -> tuple[subprocess.Popen[str], int]:
    """A controller daemon in a process of its own, and its relay process's pid."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(state), str(free_port_pair())],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line.strip().isdigit(), f"the controller printed {line!r}"
    return parent, int(line)


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_the_relay_process_goes_with_the_controller(
    how: signal.Signals, tmp_path: pathlib.Path
) -> None:
    parent, child = _parent_and_relay(tmp_path / "controller")
    try:
        assert _alive(child)
        assert int(pathlib.Path(f"/proc/{child}/stat").read_text().split()[3]) == parent.pid
        parent.send_signal(how)
        assert parent.wait(10) == (0 if how == signal.SIGTERM else -signal.SIGKILL)
        # SIGTERM: the controller closes it; SIGKILL: the kernel kills it (PDEATHSIG).
        assert _gone_within(child, 5), f"relay process {child} outlived its controller"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if _alive(child):
            os.kill(child, signal.SIGKILL)
