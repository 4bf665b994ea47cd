"""PulseAudio access: sinks and sources by name, playback and recording streams.

Streams use PulseAudio's *simple* API through ``pasimple`` (a ctypes binding to
libpulse-simple: blocking reads and writes, which suits one thread per stream); listing
sinks and sources uses ``pulsectl``. Every call takes the server explicitly (``None``:
libpulse's default, i.e. ``$PULSE_SERVER`` or the user's session), so tests and benches
point at a private server without touching the process environment.

Works the same against PipeWire's PulseAudio server (pipewire-pulse).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pasimple
import pulsectl

from edge_agent.room.errors import PulseStreamError

# libpulse runs each simple-API stream from a thread of its own, named so.
PULSE_THREAD = "threaded-ml"
# libpulse keeps process-wide state that its connections touch unguarded while they are
# set up and torn down: two threads opening streams at once crashed a process (SIGSEGV in
# ``pa_simple_new``/``pa_simple_read``). Every simple-API stream in this process is
# therefore opened and closed under this one lock; reads and writes are not. pulsectl's
# introspection connections stay outside it: their connect can wait seconds for a busy
# server, and holding the lock that long would stall the playout thread's reopen. The
# lock also lets ``_new_threads`` see exactly one new thread.
CONNECTING = threading.RLock()


def pulse_threads() -> set[int]:
    """OS ids of this process's libpulse stream threads."""
    out: set[int] = set()
    with contextlib.suppress(OSError):
        for task in pathlib.Path(f"/proc/{os.getpid()}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                if (task / "comm").read_text().strip() == PULSE_THREAD:
                    out.add(int(task.name))
    return out


@contextlib.contextmanager
def _new_threads(found: set[int]) -> Iterator[None]:
    """Fill ``found`` with the libpulse threads started inside the block (a stream's)."""
    with CONNECTING:
        before = pulse_threads()
        try:
            yield
        finally:
            found.clear()
            found.update(pulse_threads() - before)


RATE = 48000
CONNECT_TIMEOUT_S = 3.0
_S16 = 2  # bytes per sample


@dataclass(frozen=True)
class Endpoint:
    """A sink or source: its name, its description and its monitor source (sinks)."""

    name: str
    description: str
    monitor: str = ""


def _where(server: str | None) -> str:
    return f"PulseAudio server {server or '(default)'}"


def _introspect(server: str | None) -> pulsectl.Pulse:
    pulse = pulsectl.Pulse("classbridge", server=server, connect=False)
    try:
        pulse.connect(timeout=CONNECT_TIMEOUT_S)
    except pulsectl.PulseError as err:
        pulse.close()
        raise PulseStreamError(
            f"cannot reach {_where(server)} ({err}); is pulseaudio or pipewire-pulse running "
            "for this user? ('pactl info' shows it)"
        ) from err
    return pulse


def _close_stream(stream: pasimple.PaSimple) -> None:
    """Close a simple-API stream under the process-wide lock (see ``CONNECTING``)."""
    with CONNECTING:
        stream.close()


def list_sinks(server: str | None = None) -> list[Endpoint]:
    """The playback sinks of the server."""
    with _introspect(server) as pulse:
        return [Endpoint(s.name, s.description, s.monitor_source_name) for s in pulse.sink_list()]


def list_sources(server: str | None = None) -> list[Endpoint]:
    """The recording sources of the server (monitors of the sinks included)."""
    with _introspect(server) as pulse:
        return [Endpoint(s.name, s.description) for s in pulse.source_list()]


def default_sink(server: str | None = None) -> str:
    """The name of the server's default sink ('' when it has none)."""
    with _introspect(server) as pulse:
        return str(pulse.server_info().default_sink_name or "")


class Playback:
    """A blocking playback stream of s16 at 48 kHz into a sink, with a bounded buffer."""

    def __init__(
        self, sink: str, *, channels: int, latency_ms: int, server: str | None = None
    ) -> None:
        self.sink, self.channels, self.latency_ms, self.server = sink, channels, latency_ms, server
        self._stream: pasimple.PaSimple | None = None
        # Our stream's own name, to find it among the server's streams (see ``sink_now``).
        self.name = f"remote classrooms {uuid.uuid4().hex[:12]}"
        self._watch: pulsectl.Pulse | None = None
        self.threads: set[int] = set()  # the OS ids of libpulse's thread for this stream

    def open(self) -> None:
        """Connect the stream; ``tlength`` (what the server keeps queued) is the latency."""
        frame = _S16 * self.channels
        try:
            with _new_threads(self.threads):
                self._stream = pasimple.PaSimple(
                    pasimple.PA_STREAM_PLAYBACK,
                    pasimple.PA_SAMPLE_S16LE,
                    self.channels,
                    RATE,
                    app_name="classbridge",
                    stream_name=self.name,
                    server_name=self.server,
                    device_name=self.sink or None,
                    tlength=RATE * self.latency_ms // 1000 * frame,
                    minreq=RATE // 100 * frame,  # refilled in 10 ms steps
                    prebuf=-1,
                    maxlength=-1,
                )
        except pasimple.PaSimpleError as err:
            raise PulseStreamError(
                f"cannot play into sink {self.sink or '(default)'} on {_where(self.server)}: {err}"
            ) from err

    def write(self, pcm: npt.NDArray[np.int16]) -> None:
        """Queue samples (interleaved when stereo); blocks while the buffer is full."""
        if self._stream is None:
            raise PulseStreamError(f"playback into {self.sink or '(default)'} is not open")
        try:
            self._stream.write(pcm.astype("<i2", copy=False).tobytes())
        except pasimple.PaSimpleError as err:
            raise PulseStreamError(
                f"playback into sink {self.sink or '(default)'} stopped: {err} "
                "(sink removed or sound server gone)"
            ) from err

    def latency_s(self) -> float:
        """How long a sample written now takes to reach the sink's output."""
        if self._stream is None:
            return 0.0
        try:
            return float(self._stream.get_latency()) / 1e6
        except pasimple.PaSimpleError:
            return 0.0

    def sink_now(self) -> str | None:
        """The sink the stream plays into now (None: the stream is not found).

        When its sink goes away, PulseAudio moves a stream to another sink rather than
        ending it (its stream rescue), so writing keeps working while the sound comes out
        of the wrong loudspeakers — perhaps another room's."""
        if self._stream is None:
            return None
        try:
            watch = self._watch
            if watch is None:
                watch = self._watch = _introspect(self.server)
            sinks = {s.index: s.name for s in watch.sink_list()}
            for stream in watch.sink_input_list():
                if stream.proplist.get("media.name") == self.name:
                    return sinks.get(stream.sink)
        except (pulsectl.PulseError, PulseStreamError):
            self._drop_watch()
        return None

    def _drop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    def close(self) -> None:
        """Drop the stream (what is still queued is discarded)."""
        stream, self._stream = self._stream, None
        self._drop_watch()
        if stream is not None:
            _close_stream(stream)


class Recording:
    """A blocking recording stream of mono s16 at 48 kHz from a source, in small fragments."""

    def __init__(self, source: str, *, fragment_ms: int = 20, server: str | None = None) -> None:
        self.source, self.fragment_ms, self.server = source, fragment_ms, server
        self._stream: pasimple.PaSimple | None = None
        self.threads: set[int] = set()  # the OS ids of libpulse's thread for this stream

    def open(self) -> None:
        """Connect the stream."""
        try:
            with _new_threads(self.threads):
                self._stream = pasimple.PaSimple(
                    pasimple.PA_STREAM_RECORD,
                    pasimple.PA_SAMPLE_S16LE,
                    1,
                    RATE,
                    app_name="classbridge",
                    stream_name="classroom microphone",
                    server_name=self.server,
                    device_name=self.source if self.source not in ("", "default") else None,
                    fragsize=RATE * self.fragment_ms // 1000 * _S16,
                    maxlength=-1,
                )
        except pasimple.PaSimpleError as err:
            raise PulseStreamError(
                f"cannot record from source {self.source or '(default)'} on "
                f"{_where(self.server)}: {err}"
            ) from err

    def read(self, samples: int) -> npt.NDArray[np.int16]:
        """The next ``samples`` samples; blocks until they are there."""
        if self._stream is None:
            raise PulseStreamError(f"recording from {self.source or '(default)'} is not open")
        try:
            data = self._stream.read(samples * _S16)
        except pasimple.PaSimpleError as err:
            raise PulseStreamError(
                f"recording from source {self.source or '(default)'} stopped: {err} "
                "(source removed or sound server gone)"
            ) from err
        return np.frombuffer(data, dtype="<i2").astype(np.int16)

    def close(self) -> None:
        """Drop the stream."""
        stream, self._stream = self._stream, None
        if stream is not None:
            _close_stream(stream)
