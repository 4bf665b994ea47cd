"""The child process of the RTMP push (``python -m edge_agent.media.rtmp_child``).

It reads encoded frames from its standard input (``RECORD`` headers and payloads), muxes
the H.264 as it is and the Opus re-encoded to AAC into FLV over RTMP, and reports
progress as one JSON line per event on its standard output. Why a child process at all
is said in :mod:`edge_agent.media.rtmp_push`.
"""

from __future__ import annotations

import errno
import fractions
import json
import logging
import os
import signal
import struct
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import IO, Any

import av
import numpy as np

from protocols.media.h264 import parameter_sets

# One frame on the pipe to the child: kind (b"v"/b"a"), flags, pts, time base
# (numerator, denominator), capture wall-clock ms, payload length; then the payload.
RECORD = struct.Struct("<cBqiidI")
FLAG_KEYFRAME = 1
FLAG_RESTARTED = 2  # the source restarted: its pts no longer follow on
AUDIO_RATE = 48000
#: AAC bit rate of the pushed audio (the push passes its own).
AUDIO_BITRATE = 64000
# A source whose timestamps stay this far from its capture clock for the window is moved
# back in line; one that jumps further than _JUMP_MS is re-anchored at once (see _Clock).
_DRIFT_TOLERANCE_MS = 100.0
_DRIFT_WINDOW_MS = 500.0
_JUMP_MS = 2000.0
# A forward gap in the audio up to this long is filled with silence; a longer one is
# left as a gap in the timeline.
_MAX_AUDIO_FILL_S = 1.0
_STATS_EVERY_S = 0.5


class StreamChanged(Exception):
    """The video's SPS/PPS changed (new size or encoder); the push must reconnect."""


class _Clock:
    """Maps one source's pts onto the push timeline (ms from the first keyframe).

    The pts keep their spacing as long as they agree with the capture clock. Capture
    times jitter (devices deliver in chunks, late), so a single outlier is ignored; a
    source that stays off by more than ``_DRIFT_TOLERANCE_MS`` for ``_DRIFT_WINDOW_MS``
    is moved by the smallest deviation seen, and one that jumps by more than
    ``_JUMP_MS`` (restart, outage) is re-anchored at once.
    """

    def __init__(self, t0_ms: float) -> None:
        self._t0 = t0_ms
        self._origin: int | None = None
        self._base = 0.0
        self._drift_since: float | None = None
        self._drift = 0.0

    def restart(self) -> None:
        """The source restarted: place its next frame by its capture time."""
        self._origin = None

    def ms(self, pts: int, time_base: fractions.Fraction, capture_ms: float) -> float:
        """The frame's time on the push timeline, in ms."""
        wall = capture_ms - self._t0
        if self._origin is None:
            self._origin, self._base = pts, wall
            return wall
        t = self._base + float((pts - self._origin) * time_base) * 1000.0
        deviation = wall - t
        if abs(deviation) <= _DRIFT_TOLERANCE_MS:
            self._drift_since = None
            return t
        if abs(deviation) > _JUMP_MS:
            self._origin, self._base, self._drift_since = pts, wall, None
            return wall
        if self._drift_since is None or deviation * self._drift < 0:
            self._drift_since, self._drift = capture_ms, deviation
        elif abs(deviation) < abs(self._drift):
            self._drift = deviation
        if capture_ms - self._drift_since >= _DRIFT_WINDOW_MS:
            self._base += self._drift
            self._drift_since = None
            return t + self._drift
        return t


class _Muxer:
    """FLV to the server: H.264 as it comes, Opus decoded and encoded to AAC."""

    def __init__(self, config: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
        self._cfg = config
        self._emit = emit
        self._container: Any = None
        self._vstream: Any = None
        self._astream: Any = None
        self._sets: bytes | None = None
        self._t0 = 0.0
        self._vclock: _Clock | None = None
        self._aclock: _Clock | None = None
        self._last_v = -1
        self._last_a = -1
        self._decoder: Any = None
        self._resampler: Any = None
        self._pcm: Any = None  # numpy float32 samples not yet encoded
        self._pcm_pos = 0  # timeline position (samples at 48 kHz) of self._pcm[0]
        self.packets = self.bytes = self.video = self.audio = 0
        self._stats_at = 0.0

    def feed(
        self, kind: bytes, flags: int, pts: int, tb: fractions.Fraction, cap: float, data: bytes
    ) -> None:
        """Mux one frame from the agent (opens the connection on the first keyframe)."""
        key = bool(flags & FLAG_KEYFRAME)
        if flags & FLAG_RESTARTED:
            clock = self._vclock if kind == b"v" else self._aclock
            if clock is not None:
                clock.restart()
        if kind == b"v":
            self._video(key, pts, tb, cap, data)
        elif self._container is not None and self._astream is not None:
            self._audio(pts, tb, cap, data)
        now = time.monotonic()
        if now - self._stats_at >= _STATS_EVERY_S:
            self._stats_at = now
            self.report()

    def report(self) -> None:
        self._emit(
            {
                "event": "stats",
                "packets": self.packets,
                "bytes": self.bytes,
                "video": self.video,
                "audio": self.audio,
            }
        )

    def _video(self, key: bool, pts: int, tb: fractions.Fraction, cap: float, data: bytes) -> None:
        sets = parameter_sets(data) if key else None
        if self._container is None:
            if sets is None:
                return  # wait for a keyframe with its SPS/PPS
            self._sets = sets
            self._t0 = cap
            self._vclock = _Clock(cap)
            self._aclock = _Clock(cap)
            self._open(*_picture_size(data, self._cfg))
        elif sets is not None and sets != self._sets:
            raise StreamChanged(
                "the video's parameters changed (new size or encoder); reconnecting"
            )
        assert self._vclock is not None
        t = max(round(self._vclock.ms(pts, tb, cap)), self._last_v + 1)
        self._last_v = t
        self._mux(self._vstream, data, t, fractions.Fraction(1, 1000), key)
        self.video += 1
        if self.video == 1:
            self._emit({"event": "live"})

    def _open(self, width: int, height: int) -> None:
        self._emit({"event": "connecting"})
        container = av.open(
            self._cfg["url"],
            "w",
            format="flv",
            container_options={
                # Live: never seek back to patch duration/size into the header.
                "flvflags": "no_duration_filesize",
                # A quiet microphone must not hold video back for long.
                "max_interleave_delta": "1000000",
            },
        )
        fps = self._cfg.get("fps") or None
        self._vstream = container.add_mux_stream(
            "h264",
            rate=fractions.Fraction(fps).limit_denominator(1001) if fps else None,
            width=width,
            height=height,
        )
        if self._cfg.get("audio"):
            astream = container.add_stream("aac", rate=AUDIO_RATE)
            ctx = astream.codec_context
            ctx.layout = "mono"
            ctx.format = "fltp"
            ctx.bit_rate = int(self._cfg.get("audio_bitrate") or AUDIO_BITRATE)
            ctx.time_base = fractions.Fraction(1, AUDIO_RATE)
            self._astream = astream
            decoder = av.CodecContext.create("opus", "r")
            decoder.sample_rate = AUDIO_RATE
            decoder.layout = "mono"
            self._decoder = decoder
            self._resampler = av.AudioResampler(format="fltp", layout="mono", rate=AUDIO_RATE)
        self._container = container

    def _mux(self, stream: Any, data: bytes, pts: int, tb: fractions.Fraction, key: bool) -> None:
        packet = av.Packet(data)
        packet.stream = stream
        packet.time_base = tb
        packet.pts = packet.dts = pts
        packet.is_keyframe = key
        self._container.mux_one(packet)
        self.packets += 1
        self.bytes += len(data)

    def _audio(self, pts: int, tb: fractions.Fraction, cap: float, data: bytes) -> None:
        assert self._aclock is not None
        if cap < self._t0:
            return  # captured before the first keyframe
        start = round(self._aclock.ms(pts, tb, cap) * AUDIO_RATE / 1000)
        try:
            frames = self._decoder.decode(av.Packet(data))
        except av.FFmpegError:
            return  # one bad Opus packet: skip 20 ms
        chunks = []
        for frame in frames:
            frame.pts = None
            for out in self._resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.float32))
        if not chunks:
            return
        samples = np.concatenate(chunks)
        if self._pcm is None:
            self._pcm, self._pcm_pos = samples[:0], start
        end = self._pcm_pos + len(self._pcm)
        gap = start - end
        if gap > 2 * 960:
            if gap <= _MAX_AUDIO_FILL_S * AUDIO_RATE:
                self._pcm = np.concatenate([self._pcm, np.zeros(gap, np.float32)])
            else:
                self._encode_pcm(flush=True)
                self._pcm, self._pcm_pos = samples[:0], start
        elif gap < -2 * 960:
            return  # the source moved back in time: skip its sound until it catches up
        self._pcm = np.concatenate([self._pcm, samples])
        self._encode_pcm()

    def _encode_pcm(self, flush: bool = False) -> None:
        ctx = self._astream.codec_context
        size = ctx.frame_size or 1024
        if flush and self._pcm is not None and len(self._pcm) % size > 0:
            pad = size - len(self._pcm) % size
            self._pcm = np.concatenate([self._pcm, np.zeros(pad, np.float32)])
        while self._pcm is not None and len(self._pcm) >= size:
            chunk, self._pcm = self._pcm[:size], self._pcm[size:]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts = self._pcm_pos
            frame.time_base = fractions.Fraction(1, AUDIO_RATE)
            self._pcm_pos += size
            for packet in ctx.encode(frame):
                if packet.pts is None or packet.pts <= self._last_a:
                    continue  # the encoder's priming packet, or time going back
                self._last_a = packet.pts
                packet.stream = self._astream
                self._container.mux_one(packet)
                self.packets += 1
                self.bytes += packet.size
                self.audio += 1

    def close(self) -> None:
        if self._container is not None:
            container, self._container = self._container, None
            container.close()
        self.report()


def _picture_size(keyframe: bytes, config: dict[str, Any]) -> tuple[int, int]:
    """The video's size, from decoding its first keyframe (the FLV header needs it).

    The stream is the truth (a passthrough camera may not send the profile's size); the
    size the agent was given is the fallback.
    """
    try:
        decoder = av.CodecContext.create("h264", "r")
        for frame in decoder.decode(av.Packet(keyframe)):
            return int(frame.width), int(frame.height)
        for frame in decoder.decode(None):
            return int(frame.width), int(frame.height)
    except av.FFmpegError as err:
        logging.getLogger(__name__).warning("first keyframe did not decode: %s", err)
    width, height = int(config.get("width") or 0), int(config.get("height") or 0)
    if width <= 0 or height <= 0:
        raise ValueError(
            "the first keyframe did not decode and no video size was given; pass "
            "width= and height= to RtmpPush"
        )
    return width, height


def explain(where: str, err: BaseException) -> str:
    """One line for the technician: what went wrong with the push, and what to check."""
    code = getattr(err, "errno", None)
    if isinstance(err, StreamChanged):
        return f"{where}: {err}"
    if code == errno.ECONNREFUSED:
        return (
            f"{where}: connection refused (nothing listens there); check the push address "
            "and that the live room is open"
        )
    if code in (errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED):
        return (
            f"{where}: the server closed the connection; the live room may have ended or "
            "the push key expired"
        )
    if code in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ETIMEDOUT):
        return f"{where}: the server cannot be reached ({os.strerror(code)}); check the network"
    if isinstance(err, av.FFmpegError):
        detail = err.strerror or type(err).__name__
        logged = getattr(err, "log", None)
        if isinstance(logged, tuple) and len(logged) == 3 and logged[2]:
            detail += f" ({str(logged[2]).strip()})"
        return f"{where}: {detail}; check the push address and stream key"
    return f"{where}: {type(err).__name__}: {err}"


def scrub(text: str, url: str) -> str:
    """``text`` with the URL's stream key and query replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    segments = parts.path.strip("/").split("/")
    secrets = [url, parts.query, "/".join(segments[1:])]
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _read_exact(stream: IO[bytes], n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _die_with_parent() -> None:
    """Linux: end this process if the agent dies while it is stuck on the network."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def child_main() -> int:
    """Entry point of the push process: config line, then frames, on stdin."""
    _die_with_parent()
    out = sys.stdout

    def emit(event: dict[str, Any]) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    av.logging.set_level(av.logging.ERROR)
    stdin = sys.stdin.buffer
    config = json.loads(stdin.readline() or b"{}")
    where = str(config.get("where", "rtmp"))
    muxer = _Muxer(config, emit)
    try:
        while True:
            header = _read_exact(stdin, RECORD.size)
            if header is None:
                break  # the agent closed the pipe: end of the push
            kind, flags, pts, num, den, cap, length = RECORD.unpack(header)
            data = _read_exact(stdin, length)
            if data is None:
                break
            muxer.feed(kind, flags, pts, fractions.Fraction(num, den), cap, data)
        muxer.close()
        return 0
    except Exception as err:  # noqa: BLE001 - reported to the agent, which retries
        muxer.report()
        emit({"event": "error", "error": scrub(explain(where, err), str(config.get("url", "")))})
        return 2


if __name__ == "__main__":
    sys.exit(child_main())
