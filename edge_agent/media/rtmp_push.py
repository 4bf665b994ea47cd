"""Live push of a lesson over RTMP to a live platform (DingTalk, WeChat, any RTMP server).

The push sends the agent's own encoded H.264 as it is (no video re-encode). FLV carries
no Opus, so the microphone's Opus packets are decoded and encoded to AAC (48 kHz mono)
on the way.

**Where the work happens.** The muxing runs in a child Python process (this module run
with ``-m``), fed over a pipe, one process per connection attempt. PyAV opens the RTMP
connection and writes the FLV header (TCP connect, RTMP handshake, publish) while it
*holds the GIL*: in a thread of the agent, a server that accepts the connection and then
says nothing would freeze every thread of the agent, the event loop included, with no way
to time it out (PyAV installs no interrupt callback on output containers, so FFmpeg's
network timeouts are off too). In a child process that stall costs nothing: the agent
talks to the child through non-blocking pipes on its event loop, and kills the child when
it makes no progress. The Opus→AAC transcode runs there as well, off the agent's GIL.

**Timestamps.** Each connection starts its timeline at 0 on the first keyframe. Video and
audio keep their own timestamp spacing and are placed against each other by their
capture wall-clock times, so they stay in sync whatever their sources' pts origins; a
source that restarts, or whose pts drift or jump away from its wall clock, is re-anchored. Decode
timestamps never go backwards.

**Supervision.** A refused connection, a server that goes away, or one that stops taking
data is logged, counted and retried with backoff (0.5 s doubling to 5 s); sending resumes
at the next keyframe. Nothing raised by the push reaches the agent. ``state`` is
``idle``, ``connecting``, ``live``, ``retrying`` or ``stopped``; :meth:`RtmpPush.status`
gives the counters for the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fractions
import json
import logging
import os
import pathlib
import signal
import struct
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import IO, Any

import av
import numpy as np

from edge_agent.media.bus import FrameBus, QueueSink
from protocols.media.encoded_frame import EncodedFrame
from protocols.media.h264 import parameter_sets

log = logging.getLogger(__name__)

#: Retry delays after a failure: 0.5 s, doubling, at most 5 s apart.
BACKOFF_FIRST_S = 0.5
BACKOFF_CAP_S = 5.0
#: AAC bit rate of the pushed audio.
AUDIO_BITRATE = 64000
AUDIO_RATE = 48000

# One frame on the pipe to the child: kind (b"v"/b"a"), flags, pts, time base
# (numerator, denominator), capture wall-clock ms, payload length; then the payload.
_RECORD = struct.Struct("<cBqiidI")
_FLAG_KEYFRAME = 1
_FLAG_RESTARTED = 2  # the source restarted: its pts no longer follow on
_CHILD_MODULE = "edge_agent.media.rtmp_push"
# A source whose timestamps stay this far from its capture clock for the window is moved
# back in line; one that jumps further than _JUMP_MS is re-anchored at once (see _Clock).
_DRIFT_TOLERANCE_MS = 100.0
_DRIFT_WINDOW_MS = 500.0
_JUMP_MS = 2000.0
# A forward gap in the audio up to this long is filled with silence; a longer one is
# left as a gap in the timeline.
_MAX_AUDIO_FILL_S = 1.0
_STATS_EVERY_S = 0.5


def redact(url: str) -> str:
    """The URL without its stream key and query (push keys are secrets; never log them).

    ``rtmp://host:1935/live/abc?auth_key=…`` becomes ``rtmp://host:1935/live/***``.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    app = parts.path.strip("/").split("/")[0] if parts.path.strip("/") else ""
    return f"{parts.scheme}://{host}/{app}/***" if app else f"{parts.scheme}://{host}/***"


class RtmpPush:
    """Pushes one video bus (and optionally one audio bus) to an RTMP URL.

    ``video`` carries H.264 Annex-B access units with SPS/PPS in-band on keyframes (as the
    agent's encoders and passthrough cameras publish them); ``audio`` carries Opus, 48 kHz.
    ``request_keyframe`` (the video runner's) is called whenever a connection starts, so
    the push goes live without waiting for the next scheduled keyframe. The picture size
    is read from the stream; ``width`` and ``height`` are only a fallback, and ``fps``
    only fills in the FLV metadata.

    Use from the event loop: ``await push.start()`` … ``await push.stop()``.
    """

    def __init__(
        self,
        url: str,
        video: FrameBus,
        audio: FrameBus | None = None,
        *,
        width: int = 0,
        height: int = 0,
        fps: float = 0.0,
        audio_bitrate: int = AUDIO_BITRATE,
        request_keyframe: Callable[[], None] | None = None,
        queue_size: int = 300,
        connect_timeout_s: float = 10.0,
        stall_timeout_s: float = 10.0,
        backoff_first_s: float = BACKOFF_FIRST_S,
        backoff_cap_s: float = BACKOFF_CAP_S,
    ) -> None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("rtmp", "rtmps", "rtmpt", "rtmpts", "rtmpe"):
            raise ValueError(
                f"live push address {redact(url)!r} is not an RTMP URL; paste the push "
                "address the live platform gives (rtmp://host/app/stream-key)"
            )
        self.url = url
        self.where = redact(url)
        self.video, self.audio = video, audio
        self.width, self.height, self.fps = width, height, fps
        self.audio_bitrate = audio_bitrate
        self._request_keyframe = request_keyframe
        self.connect_timeout_s = connect_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self._backoff_first, self._backoff_cap = backoff_first_s, backoff_cap_s
        self._sink = QueueSink(queue_size)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.state = "idle"
        #: Packets and payload bytes written to the connection (video and audio), all connections.
        self.packets = 0
        self.bytes = 0
        self.video_packets = 0
        self.audio_packets = 0
        #: Connection attempts after a failure.
        self.reconnects = 0
        #: Failures: refused, dropped, stalled connections.
        self.errors = 0
        self.last_error = ""
        #: Frames not sent: queue overflow, or waiting for a keyframe after a (re)start.
        self.dropped = 0
        self.live_since: float | None = None  # wall clock
        # per attempt
        self._attempt_counts = {"packets": 0, "bytes": 0, "video": 0, "audio": 0}
        self._child_error = ""
        self._progress_at = 0.0
        self._fed_since: float | None = None
        self._connecting_at: float | None = None

    # -- public -------------------------------------------------------------------------
    async def start(self) -> None:
        """Subscribe to the buses and start pushing (connects in the background)."""
        if self._task is not None:
            return
        self._stopping.clear()
        self.state = "connecting"
        self.video.subscribe(self._sink)
        if self.audio is not None:
            self.audio.subscribe(self._sink)
        self._task = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"rtmp-push {self.where}"
        )

    async def stop(self) -> None:
        """Unpublish cleanly and stop; waits at most a few seconds."""
        self.video.unsubscribe(self._sink)
        if self.audio is not None:
            self.audio.unsubscribe(self._sink)
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, 10.0)
            except TimeoutError:
                log.warning("live push to %s did not stop within 10 s", self.where)
            except Exception:  # stop must not fail the caller
                log.exception("live push to %s failed while stopping", self.where)
        self.state = "stopped"
        self.live_since = None

    def status(self) -> dict[str, Any]:
        """State and counters for the heartbeat (the URL has its stream key removed)."""
        return {
            "url": self.where,
            "state": self.state,
            "live_since": self.live_since,
            "packets": self.packets + self._attempt_counts["packets"],
            "bytes": self.bytes + self._attempt_counts["bytes"],
            "video_packets": self.video_packets + self._attempt_counts["video"],
            "audio_packets": self.audio_packets + self._attempt_counts["audio"],
            "reconnects": self.reconnects,
            "errors": self.errors,
            "last_error": self.last_error,
            "dropped": self.dropped + self._sink.dropped,
        }

    # -- supervision --------------------------------------------------------------------
    async def _supervise(self) -> None:
        backoff = self._backoff_first
        attempts = 0
        while not self._stopping.is_set():
            if attempts:
                self.reconnects += 1
            attempts += 1
            was_live = False
            try:
                error, was_live = await self._attempt()
            except Exception as err:  # never let the push take the agent down
                log.exception("live push to %s: unexpected failure", self.where)
                error = f"{self.where}: internal error {type(err).__name__}: {err}"
            self._close_attempt_counts()
            if self._stopping.is_set():
                break
            if was_live:
                backoff = self._backoff_first
            delay, backoff = backoff, min(backoff * 2, self._backoff_cap)
            self.errors += 1
            self.last_error = error
            self.state = "retrying"
            self.live_since = None
            log.warning("live push: %s; retrying in %.1f s", error, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        self.state = "stopped"

    def _close_attempt_counts(self) -> None:
        counts = self._attempt_counts
        self.packets += counts["packets"]
        self.bytes += counts["bytes"]
        self.video_packets += counts["video"]
        self.audio_packets += counts["audio"]
        self._attempt_counts = {"packets": 0, "bytes": 0, "video": 0, "audio": 0}

    async def _attempt(self) -> tuple[str, bool]:
        """One connection: spawn the muxer, feed it until it ends; returns (error, was_live)."""
        self._child_error = ""
        self._progress_at = time.monotonic()
        self._fed_since = None
        self._connecting_at = None
        # Frames queued while no connection was up are stale: start from fresh ones.
        while not self._sink.queue.empty():
            self._sink.queue.get_nowait()
            self.dropped += 1
        config = {
            "url": self.url,
            "where": self.where,
            "audio": self.audio is not None,
            "audio_bitrate": self.audio_bitrate,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            _CHILD_MODULE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_child_env(),
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(json.dumps(config).encode() + b"\n")
        if self._request_keyframe is not None:
            self._request_keyframe()
        live = asyncio.Event()
        stderr_tail: list[str] = []
        readers = [
            asyncio.create_task(self._read_events(proc.stdout, live)),
            asyncio.create_task(_read_stderr(proc.stderr, stderr_tail, self.url)),
        ]
        feeder = asyncio.create_task(self._feed(proc))
        watchdog = asyncio.create_task(self._watch(proc, live))
        stopping = asyncio.create_task(self._stopping.wait())
        exited = asyncio.create_task(proc.wait())
        tasks = [*readers, feeder, watchdog, stopping, exited]
        try:
            await asyncio.wait({stopping, exited, feeder}, return_when=asyncio.FIRST_COMPLETED)
            feeder.cancel()
            if proc.returncode is None:
                if self._stopping.is_set():
                    await self._finish(proc)
                else:
                    proc.kill()  # the feeder ended: nothing more would reach the child
            await proc.wait()
            watchdog.cancel()
            await asyncio.wait(readers, timeout=2.0)
        finally:
            for task in tasks:
                task.cancel()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await asyncio.wait(tasks)
        results = {id(t): _outcome(t) for t in tasks}
        watchdog_error = results[id(watchdog)]
        tail = " | ".join(stderr_tail[-3:]) or "no output"
        error = (
            (watchdog_error if isinstance(watchdog_error, str) else "")
            or self._child_error
            or f"{self.where}: the push process ended (exit {proc.returncode}): {tail}"
        )
        return error, live.is_set()

    async def _finish(self, proc: asyncio.subprocess.Process) -> None:
        """End of the lesson: close the pipe so the child unpublishes; kill it if it hangs."""
        assert proc.stdin is not None
        with contextlib.suppress(Exception):
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 3.0)
        except TimeoutError:
            log.warning("live push to %s did not close within 3 s; killed", self.where)
            proc.kill()

    async def _feed(self, proc: asyncio.subprocess.Process) -> None:
        """Hand frames to the child, from the next keyframe on; never waits on the child."""
        assert proc.stdin is not None
        transport = proc.stdin.transport
        need_keyframe = True
        seen_drops = self._sink.dropped
        limit = 8 * 1024 * 1024
        # A source's frame counter going back means it restarted: its pts start over, and
        # the next frame sent of that kind tells the child to re-anchor its clock.
        counters: dict[str, int] = {}
        restarted: set[str] = set()
        while True:
            frame = await self._sink.queue.get()
            counter = frame.meta.get("counter")
            if counter is not None:
                if counter < counters.get(frame.kind, -1):
                    restarted.add(frame.kind)
                counters[frame.kind] = counter
            if self._sink.dropped != seen_drops:
                seen_drops = self._sink.dropped
                need_keyframe = True  # a frame of the GOP is gone: wait for the next one
            if frame.kind == "video":
                if need_keyframe and not frame.keyframe:
                    self.dropped += 1
                    continue
                need_keyframe = False
            elif need_keyframe:
                self.dropped += 1
                continue
            if transport.is_closing():
                return
            if transport.get_write_buffer_size() > limit:
                # The child is not reading (stalled on the network); the watchdog ends it.
                self.dropped += 1
                need_keyframe = True
                continue
            if self._fed_since is None:
                self._fed_since = time.monotonic()
            proc.stdin.write(_encode_record(frame, frame.kind in restarted))
            restarted.discard(frame.kind)

    async def _watch(self, proc: asyncio.subprocess.Process, live: asyncio.Event) -> str:
        """Kill a child that is stuck connecting or stops taking data; returns why."""
        while proc.returncode is None:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            if (
                not live.is_set()
                and self._connecting_at is not None
                and now - self._connecting_at > self.connect_timeout_s
            ):
                reason = (
                    f"{self.where}: no answer from the server within "
                    f"{self.connect_timeout_s:g} s (connection or RTMP handshake hangs); "
                    "check the push address and that the network lets RTMP (port 1935) out"
                )
            elif (
                self._fed_since is not None
                and now - max(self._fed_since, self._progress_at) > self.stall_timeout_s
            ):
                reason = (
                    f"{self.where}: the server stopped taking data for "
                    f"{self.stall_timeout_s:g} s (network down or server stalled)"
                )
            else:
                continue
            proc.kill()
            return reason
        return ""

    async def _read_events(self, stdout: asyncio.StreamReader, live: asyncio.Event) -> None:
        """Follow the child's JSON-line reports: connecting, live, stats, error."""
        while line := await stdout.readline():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            self._progress_at = time.monotonic()
            self._fed_since = None
            if kind == "connecting":
                self._connecting_at = time.monotonic()
                if self.state != "retrying":
                    self.state = "connecting"
            elif kind == "live":
                live.set()
                self.state = "live"
                self.live_since = time.time()
                log.info("live push to %s is live", self.where)
            elif kind == "stats":
                self._attempt_counts = {
                    "packets": int(event.get("packets", 0)),
                    "bytes": int(event.get("bytes", 0)),
                    "video": int(event.get("video", 0)),
                    "audio": int(event.get("audio", 0)),
                }
            elif kind == "error":
                self._child_error = str(event.get("error", ""))


def _encode_record(frame: EncodedFrame, restarted: bool = False) -> bytes:
    capture_ms = frame.capture_ms or time.time() * 1000.0
    header = _RECORD.pack(
        b"v" if frame.kind == "video" else b"a",
        (_FLAG_KEYFRAME if frame.keyframe else 0) | (_FLAG_RESTARTED if restarted else 0),
        frame.pts,
        frame.time_base.numerator,
        frame.time_base.denominator,
        capture_ms,
        len(frame.data),
    )
    return header + frame.data


def _outcome(task: asyncio.Task[Any]) -> object:
    """A finished task's result; its exception is logged (never left unretrieved)."""
    if task.cancelled():
        return None
    err = task.exception()
    if err is not None:
        log.error("live push: %s failed", task.get_name(), exc_info=err)
        return None
    return task.result()


async def _read_stderr(stderr: asyncio.StreamReader, tail: list[str], url: str) -> None:
    while line := await stderr.readline():
        text = scrub(line.decode(errors="replace").rstrip(), url)
        if text:
            log.debug("rtmp push child: %s", text)
            tail.append(text)
            del tail[:-10]


def _child_env() -> dict[str, str]:
    """The agent's environment, with this package importable in the child."""
    env = dict(os.environ)
    root = str(pathlib.Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


# =====================================================================================
# The child process: reads frames from stdin, muxes FLV to the RTMP server.
# =====================================================================================


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
        key = bool(flags & _FLAG_KEYFRAME)
        if flags & _FLAG_RESTARTED:
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
            header = _read_exact(stdin, _RECORD.size)
            if header is None:
                break  # the agent closed the pipe: end of the push
            kind, flags, pts, num, den, cap, length = _RECORD.unpack(header)
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
