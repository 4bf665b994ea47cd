"""Scripted classrooms for the talk analytics, on a real PulseAudio (bench-analytics, tests).

Each room of a lesson has its two null sinks (``<room>_spk``, ``<room>_mic``) and a
:class:`~benchlib.room_sim.RoomSimulator` that closes its acoustic loop: what the
speakers play comes back into the microphone 6 dB down and 60 ms late, with the room's
own mouth, which talks in the seconds its script says (recorded speech, espeak-ng). Around
it runs what the agent runs: its ``pulse`` microphone driver reads ``<room>_mic.monitor``,
the echo canceller takes the speakers' sound out, and the talk tracker hears the rest; the
room's sound output (``RoomSound``) plays the other rooms through ``<room>_spk`` and gives
the echo canceller exactly what it plays. Between rooms the cancelled microphone goes
straight to the other rooms' speakers (no Opus and no network: the sound path inside
each room is the agent's own).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import numpy as np
import numpy.typing as npt
import pasimple

from benchlib import room_audio as ra
from benchlib.room_sim import CONNECTING, RoomSimulator, _record
from edge_agent.analytics.talk import TalkTracker
from edge_agent.devices.pulse_mic import PulseMicrophone
from edge_agent.media.echo_cancel import EchoCanceller
from edge_agent.profile import Speakers
from edge_agent.room.errors import PulseStreamError
from edge_agent.room.sound import RoomSound

log = logging.getLogger(__name__)
RATE = ra.RATE


@dataclass(frozen=True)
class ScriptedVoice(ra.Voice):
    """A room's mouth that talks in the seconds of ``says`` from wall time ``start``, and
    never bursts (the analytics need no delay markers)."""

    start: float = 0.0
    says: tuple[bool, ...] = ()

    def talking(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Whether the script has this room talking at wall times ``t``."""
        index = np.floor(t - self.start).astype(np.int64)
        says = np.asarray(self.says, dtype=bool)
        inside = (index >= 0) & (index < says.size)
        out = np.zeros(t.shape, dtype=bool)
        out[inside] = says[index[inside]]
        return out

    def speaks_in(self, second: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """No bursts."""
        return np.zeros(second.shape, dtype=bool)


def scripted(who: str, start: float, says: str, level_dbfs: float = -24.0) -> ScriptedVoice:
    """``who`` ("lead" or "receiver") reading its text aloud in the seconds of ``says``
    that are not ``.``, from wall time ``start``."""
    base = ra.LEAD_VOICE if who == "lead" else ra.RECEIVER_VOICES[0]
    spoken = ra.speaking(base, who, level_dbfs)
    return ScriptedVoice(
        tone_hz=base.tone_hz,
        burst_hz=base.burst_hz,
        speech=spoken.speech,
        start=start,
        says=tuple(c != "." for c in says),
    )


class _Draining:
    """A recording stream that never falls behind by more than ``keep_s``: older sound is
    read and dropped first. Air has a fixed delay; a simulator thread that the machine
    starved for a moment would otherwise leave its backlog in the echo path for good
    (measured: 0.5 s growing to 4.9 s in a minute at load average 12), and no echo
    canceller follows an echo path seconds long."""

    def __init__(self, stream: pasimple.PaSimple, keep_s: float = 0.1) -> None:
        self._stream, self._keep_us = stream, keep_s * 1e6
        self.dropped_bytes = 0

    def read(self, size: int) -> bytes:
        """The next ``size`` bytes, after dropping any backlog beyond ``keep_s``."""
        while self._stream.get_latency() > self._keep_us:
            self.dropped_bytes += len(self._stream.read(size))
        data: bytes = self._stream.read(size)
        return data

    def get_latency(self) -> int:
        """The stream's latency, microseconds."""
        return int(self._stream.get_latency())

    def close(self) -> None:
        """Close the stream."""
        self._stream.close()


class SteadyRoomSimulator(RoomSimulator):
    """A room simulator whose echo path stays as long as it is (see :class:`_Draining`)."""

    def _run(self) -> None:
        try:
            rec = _record(self.server, f"{self.room}_spk.monitor", f"{self.room} air")
            with CONNECTING:
                play = self._open_play()
        except pasimple.PaSimpleError as err:
            self.error = f"room {self.room}: cannot open PulseAudio streams: {err}"
            return
        self._loop(_Draining(rec), play)  # type: ignore[arg-type]


@dataclass
class TalkRoom:
    """One classroom: its loop, its microphone path and its tracker."""

    server: str
    name: str
    lead: bool
    voice: ScriptedVoice | None
    now: Callable[[], float] = time.time
    echo_cancel: bool = True
    peers: list[TalkRoom] = field(default_factory=list)
    error: str | None = None

    def __post_init__(self) -> None:
        self.echo = EchoCanceller() if self.echo_cancel else None
        self.tracker = TalkTracker(self.lead, self.now)
        self.sim = SteadyRoomSimulator(self.server, self.name, self.voice)
        self.sound = RoomSound(
            Speakers(driver="pulse", device=f"{self.name}_spk"),
            self.echo,
            pulse_server=self.server,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames = 0

    def start(self) -> None:
        """The loop, the speakers and the microphone path."""
        self.sim.start()
        self.sound.start()
        self._thread = threading.Thread(target=self._listen, name=f"mic-{self.name}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop everything, microphone first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sound.stop()
        self.sim.stop()
        self.error = self.error or self.sim.error

    def _listen(self) -> None:
        microphone = PulseMicrophone(f"{self.name}_mic.monitor", server=self.server)
        try:
            microphone.open()
            for frame in microphone.frames():
                if self._stop.is_set():
                    break
                pcm = frame.to_ndarray().reshape(-1).astype(np.int16)
                if self.echo is not None:
                    pcm = self.echo.near(pcm)
                self.tracker.hear(pcm)
                self.frames += 1
                out = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
                out.sample_rate = RATE
                for peer in self.peers:
                    peer.sound.push(self.name, out)
        except PulseStreamError as err:
            self.error = f"room {self.name}: microphone failed: {err}"
        finally:
            microphone.close()


def pair(rooms: list[TalkRoom]) -> None:
    """Each room hears every other (the lead and its receiving rooms)."""
    for room in rooms:
        room.peers = [r for r in rooms if r is not room]


def on_script(codes: str, timeline_start: float, script_start: float, length: int) -> str:
    """The tracker's codes for the script's seconds 0..length-1 (``?`` where it has none)."""
    shift = round(script_start - timeline_start)
    out = []
    for s in range(length):
        i = s + shift
        out.append(codes[i] if 0 <= i < len(codes) else "?")
    return "".join(out)


def next_whole_second(after_s: float) -> float:
    """A whole wall-clock second at least ``after_s`` from now."""
    return float(math.ceil(time.time() + after_s))
