"""Live push of a lesson over RTMP to a live platform (DingTalk, WeChat, any RTMP server).

The push sends the agent's own encoded H.264 as it is (no video re-encode). FLV carries
no Opus, so the microphone's Opus packets are decoded and encoded to AAC (48 kHz mono)
on the way.

**Where the work happens.** The muxing runs in a child Python process
(``edge_agent.media.rtmp_child`` run with ``-m``), fed over a pipe, one process per
connection attempt. PyAV opens the RTMP connection and writes the FLV header (TCP
connect, RTMP handshake, publish) while it
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
import json
import logging
import os
import pathlib
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from edge_agent.media.bus import FrameBus, QueueSink
from edge_agent.media.rtmp_child import (
    AUDIO_BITRATE,
    FLAG_KEYFRAME,
    FLAG_RESTARTED,
    RECORD,
    scrub,
)
from protocols.live_push import redact
from protocols.media.encoded_frame import EncodedFrame

log = logging.getLogger(__name__)

#: Retry delays after a failure: 0.5 s, doubling, at most 5 s apart.
BACKOFF_FIRST_S = 0.5
BACKOFF_CAP_S = 5.0
_CHILD_MODULE = "edge_agent.media.rtmp_child"


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
    header = RECORD.pack(
        b"v" if frame.kind == "video" else b"a",
        (FLAG_KEYFRAME if frame.keyframe else 0) | (FLAG_RESTARTED if restarted else 0),
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
