"""The video jitter buffer stops waiting at a hole no retransmission will fill.

Driven by a fake clock: a hole is waited for up to ``VIDEO_HOLE_WAIT_S``, then the buffer
moves to the next frame it can complete and asks for a keyframe once.
"""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from protocols.media import aiortc_seam

pytestmark = pytest.mark.timeout(30)
WAIT = aiortc_seam.VIDEO_HOLE_WAIT_S


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _rtp(seq: int, ts: int, marker: bool, data: bytes) -> RtpPacket:
    packet = RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=ts)
    packet.marker = int(marker)
    packet._data = data  # type: ignore[attr-defined]
    return packet


def _frames(first_seq: int, count: int, per_frame: int = 2) -> list[RtpPacket]:
    """``count`` frames of ``per_frame`` packets; payload names the frame and packet."""
    out = []
    seq = first_seq
    for f in range(count):
        for p in range(per_frame):
            out.append(_rtp(seq, 3000 * (f + 1), p == per_frame - 1, bytes([65 + f, 48 + p])))
            seq += 1
    return out


def _buffer(clock: Clock, is_video: bool = True) -> aiortc_seam.MarkerJitterBuffer:
    return aiortc_seam.MarkerJitterBuffer(capacity=512, is_video=is_video, clock=clock)


def test_a_short_hole_is_waited_for_and_filled_by_the_retransmission() -> None:
    clock = Clock()
    jb = _buffer(clock)
    a0, a1, b0, b1, c0, c1, d0, d1 = _frames(10, 4)
    assert jb.add(a0) == (False, None)
    pli, frame = jb.add(a1)
    assert not pli and frame is not None and frame.data == b"A0A1"
    # b0 is lost; its retransmission comes just inside the bound
    for packet in (b1, c0, c1):
        clock.now += 0.05
        assert jb.add(packet) == (False, None)
    clock.now += WAIT - 0.16
    pli, frame = jb.add(b0)
    assert not pli and frame is not None and frame.data == b"B0B1"
    pli, frame = jb.add(d0)  # the frame held behind the hole comes next, none is lost
    assert not pli and frame is not None and frame.data == b"C0C1"
    pli, frame = jb.add(d1)
    assert not pli and frame is not None and frame.data == b"D0D1"
    assert jb.skipped_holes == 0


def test_a_hole_older_than_the_bound_is_skipped_and_one_keyframe_asked_for() -> None:
    clock = Clock()
    jb = _buffer(clock)
    packets = _frames(10, 12)  # frames A..L, two packets each, from seq 10
    assert jb.add(packets[0]) == (False, None)
    assert jb.add(packets[1])[1] is not None  # frame A
    # B's first packet and D's first are lost and never come back
    lost = {packets[2].sequence_number, packets[6].sequence_number}
    for packet in packets[3:16]:  # up to H, 0.36 s: still inside the bound
        if packet.sequence_number in lost:
            continue
        clock.now += 0.03
        assert jb.add(packet) == (False, None), "released before the bound"
    clock.now += WAIT
    # past the bound: B is dropped, C (whole) is released, and a keyframe is asked for
    pli, frame = jb.add(packets[16])
    assert pli and frame is not None and frame.data == b"C0C1"
    # D's hole is as old: skipped at once, without a second PLI
    pli, frame = jb.add(packets[17])
    assert not pli and frame is not None and frame.data == b"E0E1"
    released = [jb.add(p) for p in packets[18:]]
    assert not any(pli for pli, _ in released)
    assert [f.data for _, f in released if f is not None] == [
        b"F0F1",
        b"G0G1",
        b"H0H1",
        b"I0I1",
        b"J0J1",
        b"K0K1",
    ]
    assert jb.skipped_holes == 2
    # the lost packet's retransmission, far too late, is dropped without harm (the
    # frame held last comes out on it, as on any packet)
    pli, frame = jb.add(packets[2])
    assert not pli and frame is not None and frame.data == b"L0L1"


def test_a_skip_waits_until_a_frame_after_the_hole_is_complete() -> None:
    clock = Clock()
    jb = _buffer(clock)
    a0, a1, _b0, b1, c0, c1 = _frames(100, 3)
    jb.add(a0)
    jb.add(a1)
    assert jb.add(b1) == (False, None)  # b0 lost
    clock.now += WAIT + 0.5
    assert jb.add(c0) == (False, None)  # C is not complete yet: nothing to show
    pli, frame = jb.add(c1)
    assert pli and frame is not None and frame.data == b"C0C1"


def test_a_frame_whose_start_cannot_be_known_is_not_released() -> None:
    """After a missing packet nobody knows whether the next frame began with it."""
    clock = Clock()
    jb = _buffer(clock)
    a0, _a1, b0, b1, c0, c1 = _frames(200, 3)
    jb.add(a0)  # A's last packet is lost: B's first might follow a missing packet of B's
    assert jb.add(b0) == (False, None)
    assert jb.add(b1) == (False, None)
    clock.now += WAIT + 0.1
    assert jb.add(c0) == (False, None)
    pli, frame = jb.add(c1)
    assert pli and frame is not None and frame.data == b"C0C1"


def test_no_hole_no_skip_however_slowly_packets_come() -> None:
    clock = Clock()
    jb = _buffer(clock)
    released = []
    for packet in _frames(300, 6, per_frame=3):
        clock.now += 1.0  # a stalled sender: seconds between packets, but nothing missing
        pli, frame = jb.add(packet)
        assert not pli
        if frame is not None:
            released.append(frame.data)
    assert released == [bytes([65 + f, 48, 65 + f, 49, 65 + f, 50]) for f in range(6)]
    assert jb.skipped_holes == 0


def test_sequence_numbers_wrap_around() -> None:
    clock = Clock()
    jb = _buffer(clock)
    packets = _frames(65530, 6)  # 65530..65535, then 0..5
    for packet in packets[:4]:
        jb.add(packet)  # A and B
    # C's first packet (65534) is filled by a retransmission across the wrap
    assert jb.add(packets[5]) == (False, None)  # C1 = 65535
    assert jb.add(packets[6]) == (False, None)  # D0 = 0
    pli, frame = jb.add(packets[4])
    assert not pli and frame is not None and frame.data == b"C0C1"
    # E's first packet (2) is lost for good: skipped just after the wrap
    jb.add(packets[7])  # D1 = 1 releases D
    assert jb.add(packets[9]) == (False, None)  # E1 = 3
    clock.now += WAIT + 0.01
    assert jb.add(packets[10]) == (False, None)  # F0 = 4
    pli, frame = jb.add(packets[11])
    assert pli and frame is not None and frame.data == b"F0F1"
    assert packets[11].sequence_number == 5


def test_a_hole_just_before_the_wrap_is_skipped() -> None:
    clock = Clock()
    jb = _buffer(clock)
    packets = _frames(65532, 4)  # A 65532-3, B 65534-5, C 0-1, D 2-3
    jb.add(packets[0])
    jb.add(packets[1])
    jb.add(packets[3])  # B0 = 65534 lost
    jb.add(packets[4])
    clock.now += WAIT + 0.01
    pli, frame = jb.add(packets[5])
    assert pli and frame is not None and frame.data == b"C0C1"
    pli, frame = jb.add(packets[6])
    assert not pli and frame is None
    pli, frame = jb.add(packets[7])
    assert not pli and frame is not None and frame.data == b"D0D1"


def test_the_keyframe_request_is_repeated_until_a_keyframe_comes() -> None:
    """On a congested link the PLI is lost as easily as the media: ask again each second."""
    clock = Clock()
    jb = aiortc_seam.MarkerJitterBuffer(
        capacity=512, is_video=True, clock=clock, is_keyframe=lambda data: data[:1] == b"K"
    )
    packets = _frames(1000, 12)
    jb.add(packets[0])
    jb.add(packets[1])
    jb.add(packets[3])  # B's first packet is lost for good
    clock.now += WAIT + 0.01
    jb.add(packets[4])
    pli, frame = jb.add(packets[5])
    assert pli and frame is not None and frame.data == b"C0C1"
    plis = []
    for packet in packets[6:10]:  # D, E: not keyframes, 0.3 s apart
        clock.now += 0.3
        plis.append(jb.add(packet)[0])
    assert plis == [False, False, False, True], "asked again after KEYFRAME_REASK_S"
    keyframe = [_rtp(1010, 18000, False, b"K0"), _rtp(1011, 18000, True, b"K1")]
    clock.now += aiortc_seam.KEYFRAME_REASK_S
    assert jb.add(keyframe[0]) == (True, None)  # still none: asked again
    clock.now += aiortc_seam.KEYFRAME_REASK_S
    pli, frame = jb.add(keyframe[1])
    assert not pli and frame is not None and frame.data == b"K0K1"
    for packet in _frames(1012, 3):
        clock.now += aiortc_seam.KEYFRAME_REASK_S
        assert not jb.add(packet)[0], "the keyframe came: no more requests"


def test_without_a_keyframe_test_the_request_is_made_once() -> None:
    clock = Clock()
    jb = _buffer(clock)
    packets = _frames(7, 8)
    jb.add(packets[0])
    jb.add(packets[1])
    jb.add(packets[3])
    clock.now += WAIT + 0.01
    jb.add(packets[4])
    assert jb.add(packets[5])[0]
    for packet in packets[6:]:
        clock.now += 2.0
        assert not jb.add(packet)[0]


def test_after_aiortc_jumps_on_its_own_the_stream_flows_without_a_second_request() -> None:
    """A sender restarting its sequence numbers far away: aiortc resets and asks (PLI)."""
    clock = Clock()
    jb = _buffer(clock)
    jb.add(_rtp(10, 3000, False, b"a"))
    assert jb.add(_rtp(12, 3000, True, b"c")) == (False, None)  # 11 missing
    clock.now += 0.1
    pli, frame = jb.add(_rtp(40000, 9000, False, b"x"))
    assert pli and frame is None  # aiortc's own reset
    for seq, ts, last in ((40001, 9000, True), (40002, 12000, False), (40003, 12000, True)):
        clock.now += WAIT
        pli, frame = jb.add(_rtp(seq, ts, last, b"y"))
        assert not pli and (frame is not None) == last
    assert jb.skipped_holes == 0


def test_audio_holes_wait_as_before() -> None:
    """Audio keeps aiortc's hole policy: the same frames as aiortc's own buffer, late or not."""
    clock = Clock()
    ours = _buffer(clock, is_video=False)
    theirs = JitterBuffer(capacity=512)
    packets = [p for i, p in enumerate(_frames(40, 20, per_frame=1)) if i != 3]
    for packet in packets:
        clock.now += 5.0
        pli, frame = ours.add(packet)
        their_pli, their_frame = theirs.add(packet)
        assert not pli and not their_pli
        # ours releases on the marker bit; past the hole neither releases anything
        if packet.sequence_number > 43:
            assert frame is None and their_frame is None
    assert ours.skipped_holes == 0


async def test_release_on_marker_keeps_video_and_audio_apart() -> None:
    pc = RTCPeerConnection()
    try:
        video = pc.addTransceiver("video").receiver
        audio = pc.addTransceiver("audio").receiver
        aiortc_seam.release_on_marker(video)
        aiortc_seam.release_on_marker(audio)
        vbuf = getattr(video, aiortc_seam._JITTER_BUFFER)
        abuf = getattr(audio, aiortc_seam._JITTER_BUFFER)
        assert vbuf._is_video and not abuf._is_video
        assert vbuf._is_keyframe is not None and abuf._is_keyframe is None
        assert vbuf.capacity == 512  # aiortc 1.16's video buffer
    finally:
        await pc.close()


async def test_release_on_marker_refuses_a_changed_buffer() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("video").receiver
        buffer = getattr(receiver, aiortc_seam._JITTER_BUFFER)
        del buffer._is_video
        with pytest.raises(aiortc_seam.SeamBroken, match="_is_video"):
            aiortc_seam.release_on_marker(receiver)
    finally:
        await pc.close()
