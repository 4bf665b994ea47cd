"""The room's sound out: the remote classrooms, mixed, through the speakers (课堂扩声).

One thread, paced by the speakers: every 10 ms it pulls a chunk from each remote
classroom's :class:`PlayoutBuffer`, mixes them, writes the mix to the speakers (the write
blocks while the speakers' buffer is full) and hands exactly those samples to the echo
canceller's far end at once, so its reference is what was played, on the speakers' clock.

Speakers that disappear mid-lesson (sink unloaded, card unplugged, sound server gone) are
reported through ``on_alert`` and opened with backoff (1 s .. 10 s); meanwhile the
thread keeps consuming the buffers on the monotonic clock, so they do not grow, and the
echo canceller is not fed (nothing is played). ``on_alert(None)`` says they are back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np

from edge_agent.media.echo_cancel import EchoCanceller
from edge_agent.media.priority import favour_this_thread
from edge_agent.profile import Speakers
from edge_agent.room.errors import SpeakerError
from edge_agent.room.mixer import Mixer
from edge_agent.room.playout import CHUNK, CHUNK_S, PlayoutBuffer
from edge_agent.room.speaker import SpeakerDevice, open_speaker

log = logging.getLogger(__name__)

CHECK_S = 1.0  # how often the watcher asks whether the sound still goes to our sink
LOUDEST_ABOVE_DBFS = -45.0


def _no_alert(message: str | None) -> None:
    """The default alert sink: the log only."""


class RoomSound:
    """Plays the remote classrooms through the room's speakers (see module docstring).

    Every method is thread-safe; ``on_alert`` is called from the playout thread.
    """

    def __init__(
        self,
        spec: Speakers,
        echo: EchoCanceller | None = None,
        on_alert: Callable[[str | None], None] = _no_alert,
        *,
        pulse_server: str | None = None,
        device_factory: Callable[[], SpeakerDevice] | None = None,
        retry_s: tuple[float, float] = (1.0, 10.0),
    ) -> None:
        self.spec = spec
        self._echo = echo
        self._on_alert = on_alert
        self._factory = device_factory or (lambda: open_speaker(spec, pulse_server=pulse_server))
        self._retry_first, self._retry_cap = retry_s
        self._lock = threading.Lock()
        self._buffers: dict[str, PlayoutBuffer] = {}
        self._gains: dict[str, float] = {}
        self._mixer = Mixer(volume_db=spec.volume_db)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._device: SpeakerDevice | None = None
        self._state = "stopped"
        self._detail = ""
        self._alerted: str | None = None
        self.chunks_played = 0
        self.chunks_discarded = 0
        self.opened = 0
        self._watcher: threading.Thread | None = None
        self._moved: str | None = None  # set by the watcher: why the sound went astray

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        """Start the playout thread (the speakers are opened there, with retries)."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._state = "opening"
            self._thread = threading.Thread(target=self._run, name="room-sound", daemon=True)
            self._thread.start()
            # Asking the sound server where our stream plays takes a round trip or more:
            # never on the playout thread, whose every 10 ms is heard.
            self._watcher = threading.Thread(target=self._watch, name="room-sound-watch")
            self._watcher.daemon = True
            self._watcher.start()

    def stop(self) -> None:
        """Stop the thread, wait for it and close the speakers."""
        self._stop.set()
        thread, self._thread = self._thread, None
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.join(timeout=5)
        if thread is not None:
            thread.join(timeout=5)
            if thread.is_alive():  # a write stuck in the sound server: close from here
                log.error("room sound thread did not stop within 5 s")
        self._close_device()
        self._state = "stopped"

    @property
    def native_id(self) -> int | None:
        """The OS id of this object's thread (for CPU accounting), while it runs."""
        thread = self._thread
        return thread.native_id if thread is not None else None

    @property
    def watcher_id(self) -> int | None:
        """The OS id of the thread that checks where the sound goes, while it runs."""
        thread = self._watcher
        return thread.native_id if thread is not None else None

    def device_threads(self) -> set[int]:
        """The OS ids of the speakers' own threads (libpulse's), for CPU accounting."""
        device = self._device
        return set(getattr(device, "threads", ())) if device is not None else set()

    # -- from the lesson ------------------------------------------------------------
    def push(self, source_classroom: str, frame: av.AudioFrame) -> None:
        """A decoded frame from ``source_classroom``, arrived now."""
        arrival = time.monotonic()
        with self._lock:
            buffer = self._buffers.get(source_classroom)
            if buffer is None:
                buffer = self._buffers[source_classroom] = PlayoutBuffer()
        buffer.push(frame, arrival)

    def set_gains(self, gains_db: dict[str, float]) -> None:
        """Per-source gains in dB (missing: 0 dB; ``-inf``: muted)."""
        with self._lock:
            self._gains = dict(gains_db)

    def forget(self, source_classroom: str) -> None:
        """Drop a classroom's buffer and level (it left the lesson)."""
        with self._lock:
            self._buffers.pop(source_classroom, None)
            self._mixer.forget(source_classroom)

    def clear(self) -> None:
        """Drop every classroom (the lesson ended)."""
        with self._lock:
            for source in self._buffers:
                self._mixer.forget(source)
            self._buffers.clear()

    def loudest(self) -> str | None:
        """The classroom heard loudest over the last ~300 ms, if above -45 dBFS."""
        with self._lock:
            levels = {s: self._mixer.level_dbfs(s) for s in self._buffers}
        if not levels:
            return None
        source, level = max(levels.items(), key=lambda item: item[1])
        return source if level > LOUDEST_ABOVE_DBFS else None

    def stats(self) -> dict[str, Any]:
        """Per source: depth, target, gaps, underruns, level; overall: chunks, device state."""
        with self._lock:
            buffers = dict(self._buffers)
            levels = {s: round(self._mixer.level_dbfs(s), 1) for s in buffers}
        sources = {s: {**vars(b.stats()), "level_dbfs": levels[s]} for s, b in buffers.items()}
        return {
            "sources": sources,
            "chunks_played": self.chunks_played,
            "chunks_discarded": self.chunks_discarded,
            "limited_chunks": self._mixer.limited_chunks,
            "device": self._state,
            "detail": self._detail,
            "opened": self.opened,
        }

    # -- the playout thread -----------------------------------------------------------
    def _run(self) -> None:
        favour_this_thread()
        delay = self._retry_first
        retry_at = time.monotonic()
        tick = time.monotonic()
        while not self._stop.is_set():
            if self._device is None and time.monotonic() >= retry_at:
                if self._open():
                    delay = self._retry_first
                else:
                    retry_at = time.monotonic() + delay
                    delay = min(delay * 2, self._retry_cap)
                    tick = time.monotonic()
            try:
                pcm = self._next_chunk()
            except Exception:  # a bad frame or a bug: log it, keep the room's sound going
                log.exception("room sound: mixing failed; this chunk is silence")
                pcm = np.zeros(CHUNK, dtype=np.int16)
            device = self._device
            if device is not None:
                try:
                    device.write(pcm)  # blocks: the speakers' clock paces the loop
                except SpeakerError as err:
                    self._lost(str(err))
                    retry_at = time.monotonic() + delay
                    delay = min(delay * 2, self._retry_cap)
                    tick = time.monotonic()
                    continue
                if self._echo is not None:
                    self._echo.far(pcm)
                self.chunks_played += 1
                moved, self._moved = self._moved, None
                if moved is not None:
                    self._lost(moved)
                    retry_at = time.monotonic() + delay
                    delay = min(delay * 2, self._retry_cap)
                    tick = time.monotonic()
                    continue
            else:
                # No speakers: keep time on the monotonic clock and throw the chunk away.
                self.chunks_discarded += 1
                tick += CHUNK_S
                wait = tick - time.monotonic()
                if wait < -0.2:  # far behind (a stalled machine): do not catch up in a rush
                    tick = time.monotonic()
                self._stop.wait(max(0.0, wait))
        self._close_device()

    def _watch(self) -> None:
        """Each second: does the open device still play where it should?"""
        while not self._stop.wait(CHECK_S):
            device = self._device
            if device is None:
                continue
            try:
                device.check()
            except SpeakerError as err:
                self._moved = str(err)
            except Exception:  # a check must never take the sound down
                log.exception("room sound: checking the speakers failed")

    def _next_chunk(self) -> Any:
        with self._lock:
            chunks = {s: b.pull() for s, b in self._buffers.items()}
            gains = self._gains
            return self._mixer.mix(chunks, gains)

    def _open(self) -> bool:
        device = self._factory()
        try:
            device.open()
        except SpeakerError as err:
            device.close()
            self._alert(f"{err} (retrying)", "lost" if self.opened else "failed")
            return False
        with self._lock:
            self._device = device
        self.opened += 1
        self._state, self._detail = "ok", ""
        if self._alerted is not None:
            log.info("speakers are back")
            self._alerted = None
            self._notify(None)
        return True

    def _lost(self, reason: str) -> None:
        self._close_device()
        self._alert(f"{reason} (retrying)", "lost")

    def _alert(self, message: str, state: str) -> None:
        if not message.startswith("speakers:"):
            message = f"speakers: {message}"
        self._state, self._detail = state, message
        if message != self._alerted:
            log.warning("%s", message)
            self._alerted = message
            self._notify(message)

    def _notify(self, message: str | None) -> None:
        try:
            self._on_alert(message)
        except Exception:  # the caller's bug must not stop the sound
            log.exception("room sound: on_alert(%r) failed", message)

    def _close_device(self) -> None:
        with self._lock:
            device, self._device = self._device, None
        if device is not None:
            device.close()
