"""A room's acoustics on a real PulseAudio server: speaker → air → microphone.

Each simulated room has two null sinks: ``<room>_spk``, the agent's speakers, and
``<room>_mic``, whose monitor is the agent's microphone. The simulator records what the
speakers play (the ``_spk`` monitor), turns it down (−6 dB) and delays it (60 ms in all,
counting PulseAudio's own buffers), adds the room's mouth (a :class:`Voice`) and plays
the sum into ``_mic``. Closing the loop in two rooms at once is what makes echo and howl
possible, as in a real pair of classrooms.

Everything the speakers played is kept with its wall-clock time for the measurements.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pasimple

from benchlib.room_audio import RATE, Voice
from edge_agent.room.pulse import CONNECTING  # libpulse set-up is not thread-safe

BLOCK = 480  # 10 ms


def _latency_s(stream: pasimple.PaSimple) -> float:
    """The stream's latency as PulseAudio reports it (pasimple gives microseconds)."""
    return float(stream.get_latency()) / 1e6


@dataclass
class Heard:
    """What a recorder heard: samples, and when each block of them was in the air."""

    chunks: list[npt.NDArray[np.float32]] = field(default_factory=list)
    # Per block: the wall time of its first sample, from when it was read and the
    # stream's latency then. One reading can be off by a scheduling delay; the median
    # over all blocks of (block time - its place in the stream) is not.
    stamps: list[float] = field(default_factory=list)

    def add(self, block: npt.NDArray[np.float32], read_at: float, latency_s: float) -> None:
        """A block just read, ``latency_s`` after it was captured (plus its own length)."""
        self.stamps.append(read_at - latency_s - block.size / RATE)
        self.chunks.append(block)

    @property
    def t0(self) -> float | None:
        """The wall time of the first sample."""
        stamps = np.asarray(list(self.stamps))  # the recorder may add one meanwhile
        if stamps.size == 0:
            return None
        return float(np.median(stamps - np.arange(stamps.size) * (BLOCK / RATE)))

    def samples(self) -> npt.NDArray[np.float32]:
        """Every sample recorded so far."""
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)


def _record(server: str, source: str, name: str) -> pasimple.PaSimple:
    """A 48 kHz mono recording stream from ``source``, read in 10 ms blocks."""
    with CONNECTING:
        return _open_record(server, source, name)


def _open_record(server: str, source: str, name: str) -> pasimple.PaSimple:
    return pasimple.PaSimple(
        pasimple.PA_STREAM_RECORD,
        pasimple.PA_SAMPLE_S16LE,
        1,
        RATE,
        app_name="room-sim",
        stream_name=name,
        server_name=server,
        device_name=source,
        fragsize=BLOCK * 2,
    )


class _Worker:
    """A thread of the harness with ``start``/``stop`` and the error that ended it."""

    name = "worker"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        raise NotImplementedError


class RoomSimulator(_Worker):
    """Closes one room's acoustic loop (see the module docstring); a thread of its own."""

    def __init__(
        self,
        server: str,
        room: str,
        voice: Voice | None,
        *,
        loop_gain_db: float = -6.0,
        loop_delay_ms: float = 60.0,
        closed: bool = True,
    ) -> None:
        super().__init__()
        self.name = f"room-{room}"
        self.server, self.room, self.voice = server, room, voice
        self.gain = 10 ** (loop_gain_db / 20) if closed else 0.0
        self.loop_delay_ms = loop_delay_ms
        self.heard = Heard()
        self.delay_line_ms = 0.0

    def _run(self) -> None:
        try:
            rec = _record(self.server, f"{self.room}_spk.monitor", f"{self.room} air")
        except pasimple.PaSimpleError as err:
            self.error = f"room {self.room}: cannot open PulseAudio streams: {err}"
            return
        try:
            with CONNECTING:
                play = self._open_play()
        except pasimple.PaSimpleError as err:
            self.error = f"room {self.room}: cannot open PulseAudio streams: {err}"
            with CONNECTING:
                rec.close()
            return
        self._loop(rec, play)

    def _open_play(self) -> pasimple.PaSimple:
        return pasimple.PaSimple(
            pasimple.PA_STREAM_PLAYBACK,
            pasimple.PA_SAMPLE_S16LE,
            1,
            RATE,
            app_name="room-sim",
            stream_name=f"{self.room} mouth",
            server_name=self.server,
            device_name=f"{self.room}_mic",
            tlength=BLOCK * 2 * 3,
            prebuf=BLOCK * 2,
            minreq=BLOCK * 2,
        )

    def _loop(self, rec: pasimple.PaSimple, play: pasimple.PaSimple) -> None:
        delay: collections.deque[npt.NDArray[np.float32]] = collections.deque()
        buffered: list[float] = []
        keep: int | None = None
        anchors: collections.deque[float] = collections.deque(maxlen=300)
        written = 0
        try:
            while not self._stop.is_set():
                raw = rec.read(BLOCK * 2)
                read_at = time.time()
                x = np.frombuffer(raw, np.int16).astype(np.float32) / 32768.0
                self.heard.add(x, read_at, _latency_s(rec))
                # A room's echo path is fixed: the streams' own buffers are measured over
                # the first second, then the delay line makes up the rest, once and for all.
                if keep is None:
                    buffered.append((_latency_s(rec) + _latency_s(play)) * 1000.0)
                    if len(buffered) >= 100:
                        self.delay_line_ms = max(
                            0.0, self.loop_delay_ms - float(np.median(buffered))
                        )
                        keep = round(self.delay_line_ms / 10)
                delay.append(x * self.gain)
                air = np.zeros(BLOCK, np.float32)
                if keep is not None and len(delay) > keep:
                    air = delay.popleft()
                elif keep is None:
                    delay.popleft()
                if self.voice is not None:
                    # Where the next sample written will sound, on a steady timeline: the
                    # median over recent blocks of (when it will play - its place).
                    anchors.append(time.time() + _latency_s(play) - written / RATE)
                    starts = float(np.median(anchors)) + written / RATE
                    air = air + self.voice.block(starts, BLOCK)
                written += BLOCK
                out = np.clip(air * 32768.0, -32768, 32767).astype(np.int16)
                play.write(out.tobytes())
        except pasimple.PaSimpleError as err:
            self.error = f"room {self.room}: PulseAudio stream failed: {err}"
        finally:
            with CONNECTING:
                rec.close()
                play.close()


class MonitorRecorder(_Worker):
    """Records a sink's monitor (what a microphone hears, or what speakers play)."""

    def __init__(self, server: str, source: str) -> None:
        super().__init__()
        self.name = f"rec-{source}"
        self.server, self.source = server, source
        self.heard = Heard()

    def _run(self) -> None:
        try:
            rec = _record(self.server, self.source, f"{self.source} recorder")
        except pasimple.PaSimpleError as err:
            self.error = f"cannot record {self.source}: {err}"
            return
        try:
            while not self._stop.is_set():
                raw = rec.read(BLOCK * 2)
                block = np.frombuffer(raw, np.int16).astype(np.float32) / 32768.0
                self.heard.add(block, time.time(), _latency_s(rec))
        except pasimple.PaSimpleError as err:
            self.error = f"recording {self.source} failed: {err}"
        finally:
            with CONNECTING:
                rec.close()
