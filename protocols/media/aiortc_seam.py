"""The one place that reaches below aiortc's public API.

aiortc always decodes what it receives and encodes what it sends. classbridge needs to
forward and record encoded frames, so this module:

* taps a receiver's jitter-buffer output (the queue aiortc feeds its decoder thread from),
  optionally still letting the frames reach the decoder;
* replaces a receiver's jitter buffer with one that releases frames on their marker bit
  and, for video, stops waiting at a hole a retransmission will no longer fill;
* installs pack-only packetisers on senders, so pre-encoded tracks never construct an
  encoder context;
* hooks a sender's keyframe request (PLI/FIR), which aiortc ignores for pre-encoded tracks;
* hands a sender's RTCP receiver reports (loss, jitter, round trip) and NACKs to a callback;
* sends a PLI from a receiver towards its publisher;
* restricts ICE host candidates to chosen addresses;
* gives ICE's UDP sockets a receive buffer that holds a burst of keyframes.

Every function checks that the internals it needs are still there and raises
``SeamBroken`` otherwise; ``tests/protocols/media/test_aiortc_seam.py`` pins them, so an
aiortc upgrade that moves them fails loudly rather than silently decoding.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import queue
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aioice.turn
import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import (
    RTCP_RTPFB_NACK,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
)
from aiortc.utils import uint16_add, uint16_gt

from protocols.media import h264

_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"
_SENDER_ENCODER = "_RTCRtpSender__encoder"
_NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
_SENDER_RTT = "_RTCRtpSender__rtt"
_VIDEO_CLOCK = fractions.Fraction(1, 90000)
_AUDIO_CLOCK = fractions.Fraction(1, 48000)

FrameTap = Callable[[str, JitterFrame], None]
# Strong references to in-flight PLI sends, so the event loop cannot drop them midway.
_PENDING_PLI: set[asyncio.Future[None]] = set()


class SeamBroken(RuntimeError):
    """aiortc no longer has an internal this module depends on; re-check the pinned range."""


class _TapQueue:
    """Stands in for the receiver's decoder queue: hands each frame to a tap first."""

    def __init__(self, inner: queue.Queue[Any], on_frame: FrameTap, decode: bool) -> None:
        self._inner = inner
        self._on_frame = on_frame
        self._decode = decode

    def put(self, item: Any) -> None:
        """Receive ``(codec, JitterFrame)`` from aiortc's RTP handler, or ``None`` to stop."""
        if item is None:
            self._inner.put(None)
            return
        codec, frame = item
        self._on_frame(codec.mimeType.split("/")[0], frame)
        if self._decode:
            self._inner.put(item)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        """Called by aiortc's decoder thread; blocks until a frame or the stop marker."""
        return self._inner.get(*args, **kwargs)


def tap_receiver(receiver: RTCRtpReceiver, on_frame: FrameTap, *, decode: bool) -> None:
    """Deliver each reassembled encoded frame to ``on_frame(kind, frame)``.

    Must be called before the receiver starts (before the peer connection connects). With
    ``decode=False`` aiortc's decoder never sees a frame and never builds a decoder.
    """
    current = getattr(receiver, _DECODER_QUEUE, None)
    if not isinstance(current, queue.Queue):
        raise SeamBroken(f"RTCRtpReceiver has no {_DECODER_QUEUE} queue.Queue")
    if getattr(receiver, _DECODER_THREAD, "missing") is not None:
        raise SeamBroken("tap_receiver() called after the receiver started, or aiortc changed")
    setattr(receiver, _DECODER_QUEUE, _TapQueue(current, on_frame, decode))


# How long a video receiver waits at a hole (a packet lost and not yet retransmitted)
# before it gives the lost frames up. aiortc NACKs the missing packets only when a new
# hole appears, so a retransmission that comes at all comes one round trip after that:
# tens of ms on a county link, up to ~250 ms through a congested school uplink whose
# queue holds 200 ms. 400 ms leaves room for that; waiting longer only freezes the
# picture, since once packets flow cleanly nothing asks again. Past it the buffer moves
# to the next whole frame and asks for a keyframe. aiortc alone waits until 512 newer
# packets have come: 17 s at the 180 kbps congestion steps a camera down to, and whole
# pictures came back 26-28 s after a burst (tests/protocols/media/test_loss_burst.py).
VIDEO_HOLE_WAIT_S = 0.4
# After a skip the keyframe request is repeated this often until a keyframe comes: on a
# congested link the PLI is lost as easily as the media, and the picture stays broken
# until the encoder's next periodic keyframe (up to 10 s). Not more often: at 180 kbps a
# keyframe alone takes a few hundred ms to cross, and each one asked for adds to the load.
KEYFRAME_REASK_S = 1.0


class MarkerJitterBuffer(JitterBuffer):
    """Releases a frame as soon as its last packet (RTP marker bit) completes it.

    aiortc's buffer releases a frame only when the next frame's first packet arrives,
    which adds one frame interval (33 ms at 30 fps) per hop. For video, a hole missing
    for longer than ``hole_wait_s`` is skipped: what lies before the next complete frame
    is dropped, that frame is released and a PLI is asked for (at most once per
    ``hole_wait_s``); given ``is_keyframe``, the PLI is repeated every
    ``KEYFRAME_REASK_S`` until a keyframe is released. Audio's holes wait for aiortc's
    own logic, unchanged. ``clock`` is the buffer's one source of time.
    """

    def __init__(
        self,
        capacity: int,
        prefetch: int = 0,
        is_video: bool = False,
        *,
        clock: Callable[[], float] = time.monotonic,
        hole_wait_s: float = VIDEO_HOLE_WAIT_S,
        is_keyframe: Callable[[bytes], bool] | None = None,
    ) -> None:
        super().__init__(capacity, prefetch=prefetch, is_video=is_video)
        self._clock = clock
        self._hole_wait_s = hole_wait_s
        self._is_keyframe = is_keyframe
        self._awaiting_keyframe = False
        self._highest: int | None = None  # the newest packet held
        # (seq, t): the packet seq arrived at t after a gap, so every packet before it
        # that is missing now has been missing since t at least. Oldest first.
        self._gaps: collections.deque[tuple[int, float]] = collections.deque()
        self._last_pli: float | None = None
        self.skipped_holes = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """Add a packet; returns (PLI needed, a completed frame if any)."""
        pli_flag, frame = super().add(packet)
        if frame is None:
            frame = self._take_complete_frame()
        if not self._is_video:
            return pli_flag, frame
        now = self._clock()
        if pli_flag:  # aiortc itself jumped (overflow or a far-off sequence number)
            self._highest = None
            self._gaps.clear()
            self._asked_keyframe(now)
        self._note_arrival(packet.sequence_number, now)
        if frame is None:
            since = self._hole_since(now)
            if since is not None and now - since > self._hole_wait_s:
                frame = self._skip_hole()
                if frame is not None:
                    self.skipped_holes += 1
                    if self._last_pli is None or now - self._last_pli >= self._hole_wait_s:
                        pli_flag = self._asked_keyframe(now)
        if self._awaiting_keyframe:
            if frame is not None and self._is_keyframe and self._is_keyframe(frame.data):
                self._awaiting_keyframe = False
            elif self._last_pli is not None and now - self._last_pli >= KEYFRAME_REASK_S:
                pli_flag = self._asked_keyframe(now)
        return pli_flag, frame

    def _asked_keyframe(self, now: float) -> bool:
        """Note a PLI sent now; with a keyframe test, keep asking until one comes."""
        self._last_pli = now
        self._awaiting_keyframe = self._is_keyframe is not None
        return True

    def _ahead(self, seq: int) -> int:
        """How far ``seq`` lies after the origin (a large number if before it)."""
        assert self._origin is not None
        return uint16_add(seq, -self._origin)

    def _top(self) -> int:
        """How far the newest packet held lies after the origin (-1: nothing held)."""
        if self._highest is None or self._ahead(self._highest) >= self.capacity:
            return -1
        return self._ahead(self._highest)

    def _note_arrival(self, seq: int, now: float) -> None:
        """Remember the newest packet held, and when a gap opened before it."""
        if self._origin is None or self._ahead(seq) >= self.capacity:
            return  # an old packet aiortc dropped, or one already released
        ahead, top = self._ahead(seq), self._top()
        if ahead > top:
            if ahead > top + 1:
                self._gaps.append((seq, now))
            self._highest = seq

    def _first_missing(self) -> int | None:
        """The oldest missing sequence number with a newer packet held, if any."""
        assert self._origin is not None
        for count in range(self._top()):
            if self._packets[(self._origin + count) % self.capacity] is None:
                return uint16_add(self._origin, count)
        return None

    def _hole_since(self, now: float) -> float | None:
        """Since when the oldest missing packet has been missing (None: no hole)."""
        if self._origin is None:
            return None
        hole = self._first_missing()
        if hole is None:
            self._gaps.clear()
            return None
        # Gaps wholly before the oldest missing packet have been filled or dropped.
        while self._gaps and not uint16_gt(self._gaps[0][0], hole):
            self._gaps.popleft()
        if not self._gaps:  # cannot happen; start the clock rather than never skip
            assert self._highest is not None
            self._gaps.append((self._highest, now))
        return self._gaps[0][1]

    def _skip_hole(self) -> JitterFrame | None:
        """Drop everything before the first complete frame after the oldest hole; release it."""
        assert self._origin is not None
        hole = self._first_missing()
        if hole is None:
            return None
        span = self._top() + 1
        start = self._ahead(hole) + 1
        while start < span:
            before = self._packets[(self._origin + start - 1) % self.capacity]
            first = self._packets[(self._origin + start) % self.capacity]
            # A frame begins where the packet before it is held and ends another frame;
            # after a missing packet nobody can tell whether the frame began there.
            if (
                first is None
                or before is None
                or (before.timestamp == first.timestamp and not before.marker)
            ):
                start += 1
                continue
            end = start
            while end < span:
                pkt = self._packets[(self._origin + end) % self.capacity]
                if pkt is None or pkt.timestamp != first.timestamp:
                    break
                if pkt.marker:
                    self.remove(start)
                    return self._take_complete_frame()
                end += 1
            start = end  # > start: the packet at ``start`` belongs to its frame
        return None

    def _take_complete_frame(self) -> JitterFrame | None:
        """The oldest frame, if its packets run unbroken up to one with the marker bit."""
        if self._origin is None:
            return None
        packets: list[RtpPacket] = []
        for count in range(self.capacity):
            pkt = self._packets[(self._origin + count) % self.capacity]
            if pkt is None or (packets and pkt.timestamp != packets[0].timestamp):
                return None
            packets.append(pkt)
            if pkt.marker:
                self.remove(count + 1)
                return JitterFrame(
                    data=b"".join(p._data for p in packets),  # type: ignore[attr-defined]
                    timestamp=pkt.timestamp,
                )
        return None


AUDIO_NACK_REPEAT_S = 0.04  # a lost audio packet is asked for again this often…
AUDIO_NACK_GIVE_UP_S = 1.2  # …until the jitter buffer moves past it
# Packets (20 ms each) the audio jitter buffer waits at a hole for its retransmission:
# 1.28 s, enough for a retransmission queued behind a congested uplink. Only a hole
# waits; a stream without loss is released as fast as before.
AUDIO_JITTER_PACKETS = 64


class _RepeatingNacks(NackGenerator):
    """aiortc's NACK generator, remembering when each hole appeared and the stream's SSRC.

    aiortc sends a NACK only when a new hole appears; with loss on the return path too,
    one lost NACK or retransmission leaves the hole for good. For audio the agent repeats
    the NACK for a hole until it is filled or too old to matter.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ssrc: int | None = None
        self.since: dict[int, float] = {}

    def add(self, packet: RtpPacket) -> bool:
        self.ssrc = packet.ssrc
        missed: bool = super().add(packet)
        now = time.monotonic()
        for seq in self.missing:
            self.since.setdefault(seq, now)
        for seq in [s for s in self.since if s not in self.missing]:
            del self.since[seq]
        return missed

    def due(self) -> list[int]:
        """Holes still worth asking for; older ones are forgotten."""
        now = time.monotonic()
        for seq, since in list(self.since.items()):
            if now - since > AUDIO_NACK_GIVE_UP_S:
                self.missing.discard(seq)
                del self.since[seq]
        return sorted(self.missing)


async def _repeat_nacks(receiver: RTCRtpReceiver, nacks: _RepeatingNacks) -> None:
    while True:
        await asyncio.sleep(AUDIO_NACK_REPEAT_S)
        lost = nacks.due()
        if lost and nacks.ssrc is not None:
            with contextlib.suppress(ConnectionError, AttributeError):
                await receiver._send_rtcp_nack(nacks.ssrc, lost)


_NACK_TASKS: set[asyncio.Task[None]] = set()


def enable_audio_nack(receiver: RTCRtpReceiver) -> None:
    """Ask for lost audio packets again, repeatedly (aiortc only does it once, for video).

    Sound is protected first: the audio jitter buffer waits up to 16 packets at a hole,
    so a retransmission that arrives within ~300 ms fills it. The repeating task stops
    when the receiver's transport is gone.
    """
    if not hasattr(receiver, _NACK_GENERATOR) or not hasattr(receiver, "_send_rtcp_nack"):
        raise SeamBroken(f"RTCRtpReceiver has no {_NACK_GENERATOR} or _send_rtcp_nack")
    if getattr(receiver, _NACK_GENERATOR) is not None:
        return
    nacks = _RepeatingNacks()
    setattr(receiver, _NACK_GENERATOR, nacks)
    current = getattr(receiver, _JITTER_BUFFER, None)
    if not isinstance(current, JitterBuffer):
        raise SeamBroken(f"RTCRtpReceiver has no {_JITTER_BUFFER} JitterBuffer")
    setattr(
        receiver,
        _JITTER_BUFFER,
        type(current)(capacity=AUDIO_JITTER_PACKETS, prefetch=getattr(current, "_prefetch", 0)),
    )
    task = asyncio.ensure_future(_repeat_nacks(receiver, nacks))
    _NACK_TASKS.add(task)
    task.add_done_callback(_NACK_TASKS.discard)
    _stop_with(receiver, task)


def _stop_with(receiver: RTCRtpReceiver, task: asyncio.Task[None]) -> None:
    original = receiver.stop

    async def stop() -> None:
        task.cancel()
        await original()

    receiver.stop = stop  # type: ignore[method-assign]


_BUFFER_INTERNALS = ("_origin", "_packets", "_is_video", "remove")


def release_on_marker(receiver: RTCRtpReceiver) -> None:
    """Give the receiver a jitter buffer that releases frames on their marker bit.

    A video receiver's buffer also stops waiting at a hole after ``VIDEO_HOLE_WAIT_S`` and
    asks for a keyframe until one comes.
    """
    current = getattr(receiver, _JITTER_BUFFER, None)
    if not isinstance(current, JitterBuffer):
        raise SeamBroken(f"RTCRtpReceiver has no {_JITTER_BUFFER} JitterBuffer")
    missing = [name for name in _BUFFER_INTERNALS if not hasattr(current, name)]
    if missing:
        raise SeamBroken(f"aiortc's JitterBuffer has no {', '.join(missing)}")
    # classbridge negotiates H.264 only (every peer sets its codec preferences so), which
    # lets the buffer tell when the keyframe it asked for after a skip has come
    replacement = MarkerJitterBuffer(
        capacity=current.capacity,
        is_video=current._is_video,
        is_keyframe=h264.is_keyframe if current._is_video else None,
    )
    setattr(receiver, _JITTER_BUFFER, replacement)


def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI for every source the receiver has seen; False if none yet."""
    send_pli = getattr(receiver, "_send_rtcp_pli", None)
    if send_pli is None:
        raise SeamBroken("RTCRtpReceiver._send_rtcp_pli is gone")
    sources = receiver.getSynchronizationSources()
    if not sources:
        return False
    for source in sources:
        task = asyncio.ensure_future(send_pli(source.source))
        _PENDING_PLI.add(task)
        task.add_done_callback(_PENDING_PLI.discard)
    return True


class H264Packer:
    """Packetises pre-encoded H.264 access units; owns no codec context.

    aiortc hands a receiver's bitrate estimate (REMB) to its encoder's ``target_bitrate``;
    the packer passes it on to ``on_estimate`` so the agent's own encoder can follow it.
    """

    on_estimate: Callable[[int], None] | None = None
    _target_bitrate = 0

    @property
    def target_bitrate(self) -> int:
        """The last bitrate estimate from the receiver, bits/s (0: none yet)."""
        return self._target_bitrate

    @target_bitrate.setter
    def target_bitrate(self, bps: int) -> None:
        self._target_bitrate = bps
        if self.on_estimate is not None:
            self.on_estimate(bps)

    def pack(self, packet: av.Packet[Any]) -> tuple[list[bytes], int]:
        """Split an Annex-B access unit into RTP payloads."""
        nals = H264Encoder._split_bitstream(bytes(packet))
        assert packet.pts is not None and packet.time_base is not None
        return H264Encoder._packetize(nals), _rescale(packet, _VIDEO_CLOCK)


class OpusPacker:
    """Passes pre-encoded Opus packets through; owns no codec context."""

    def pack(self, packet: av.Packet[Any]) -> tuple[list[bytes], int]:
        """One Opus packet is one RTP payload."""
        return [bytes(packet)], _rescale(packet, _AUDIO_CLOCK)


def _rescale(packet: av.Packet[Any], clock: fractions.Fraction) -> int:
    assert packet.pts is not None and packet.time_base is not None
    return int(packet.pts * packet.time_base / clock)


def use_packer(sender: RTCRtpSender) -> None:
    """Make a sender of pre-encoded packets packetise them without building an encoder."""
    if not hasattr(sender, _SENDER_ENCODER):
        raise SeamBroken(f"RTCRtpSender has no {_SENDER_ENCODER}")
    packer: H264Packer | OpusPacker = H264Packer() if sender.kind == "video" else OpusPacker()
    setattr(sender, _SENDER_ENCODER, packer)


def on_bitrate_estimate(sender: RTCRtpSender, callback: Callable[[int], None]) -> None:
    """Call ``callback(bps)`` with each REMB estimate for a video sender using our packer."""
    packer = getattr(sender, _SENDER_ENCODER, None)
    if not isinstance(packer, H264Packer):
        raise SeamBroken("call use_packer on a video sender before on_bitrate_estimate")
    packer.on_estimate = callback


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever the remote side asks this sender for a keyframe."""
    original = getattr(sender, "_send_keyframe", None)
    if original is None:
        raise SeamBroken("RTCRtpSender._send_keyframe is gone")

    def _hooked() -> None:
        original()
        callback()

    sender._send_keyframe = _hooked  # type: ignore[method-assign]


@dataclass(frozen=True)
class ReceiverReport:
    """What the far end said about one sent stream in an RTCP receiver report."""

    fraction_lost: float  # 0..1, of the packets expected since its previous report
    packets_lost: int  # cumulative
    jitter: int  # interarrival jitter, in RTP clock units
    rtt_s: float | None  # aiortc's smoothed round trip (None until a report echoes an SR)
    nacked: int  # packets the far end asked for again since the previous report


def on_receiver_report(sender: RTCRtpSender, callback: Callable[[ReceiverReport], None]) -> None:
    """Call ``callback`` with each receiver report about ``sender``'s stream.

    aiortc keeps only the last report in its statistics; a congestion estimate needs each
    one as it comes, so the sender's RTCP handler is wrapped (after aiortc's own handling,
    so the round trip includes this report). NACKs are counted between reports.
    """
    original: Callable[[Any], Awaitable[None]] | None = getattr(sender, "_handle_rtcp_packet", None)
    if original is None or not hasattr(sender, _SENDER_RTT):
        raise SeamBroken(f"RTCRtpSender._handle_rtcp_packet or {_SENDER_RTT} is gone")
    nacked = 0

    async def _hooked(packet: Any) -> None:
        nonlocal nacked
        await original(packet)
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            nacked += len(packet.lost)
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc != sender._ssrc:
                    continue
                callback(
                    ReceiverReport(
                        fraction_lost=report.fraction_lost / 256.0,
                        packets_lost=report.packets_lost,
                        jitter=report.jitter,
                        rtt_s=getattr(sender, _SENDER_RTT),
                        nacked=nacked,
                    )
                )
                nacked = 0

    sender._handle_rtcp_packet = _hooked  # type: ignore[method-assign]


def _address_filter(addresses: list[str]) -> Callable[[bool, bool], list[str]]:
    def _only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    return _only


@contextlib.contextmanager
def host_addresses(addresses: list[str]) -> Iterator[None]:
    """Gather ICE host candidates only on ``addresses`` while the context is open."""
    original = aioice.ice.get_host_addresses
    pin_host_addresses(addresses)
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


# A lesson starts with a keyframe on every track at once: at 720p that is 20-30 packets
# each, several tracks, arriving within a few milliseconds. aioice gives its sockets a
# 256 KiB receive buffer, which overflowed whenever the process was busy for a moment (167
# datagrams dropped in one failing run, none in the passing ones), and the lost keyframes
# cost the receiving room the first 2-3 s of each feed. The kernel grants up to
# net.core.rmem_max (systemd/classbridge-sysctl.conf raises that maximum to this size).
MEDIA_RECEIVE_BUFFER = 4 * 1024 * 1024


def size_receive_buffers(size: int = MEDIA_RECEIVE_BUFFER) -> None:
    """Ask for ``size`` bytes of receive buffer on every ICE socket opened from now on."""
    if not isinstance(getattr(aioice.turn, "UDP_SOCKET_BUFFER_SIZE", None), int):
        raise SeamBroken("aioice.turn.UDP_SOCKET_BUFFER_SIZE is gone")
    aioice.turn.UDP_SOCKET_BUFFER_SIZE = size


def pin_host_addresses(addresses: list[str]) -> None:
    """Gather ICE host candidates only on ``addresses`` for the rest of the process."""
    if not callable(getattr(aioice.ice, "get_host_addresses", None)):
        raise SeamBroken("aioice.ice.get_host_addresses is gone")
    aioice.ice.get_host_addresses = _address_filter(addresses)  # type: ignore[assignment]
