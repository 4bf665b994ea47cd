"""``test speaker``: play a 1 kHz tone on the room's speakers and, where the sink has a
monitor (PulseAudio), record it at the same time to confirm it came out."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.profile import Speakers
from edge_agent.room.errors import PulseStreamError, SpeakerError
from edge_agent.room.pulse import RATE, Recording, default_sink, list_sinks
from edge_agent.room.speaker import CHUNK, open_speaker

HEARD_ABOVE_DBFS = -40.0


@dataclass(frozen=True)
class SpeakerCheck:
    """What the test tone did: played, heard on the monitor, at what level and delay."""

    played: bool
    monitor: str  # '' when nothing could listen (ALSA)
    heard: bool
    level_dbfs: float | None
    delay_ms: float | None


def tone(freq: float = 1000.0, seconds: float = 1.0, dbfs: float = -12.0) -> npt.NDArray[np.int16]:
    """A sine whose peak is ``dbfs``, 48 kHz mono."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * freq * t) * 32767 * 10 ** (dbfs / 20)).astype(np.int16)


def tone_dbfs(pcm: npt.NDArray[np.int16], freq: float = 1000.0) -> float:
    """The peak level of ``freq`` in ``pcm``, dBFS (one DFT bin)."""
    if pcm.size == 0:
        return -120.0
    t = np.arange(pcm.size) / RATE
    amp = 2 * abs(np.dot(pcm / 32767.0, np.exp(-2j * np.pi * freq * t))) / pcm.size
    return float(20 * np.log10(max(amp, 1e-6)))


def check_speakers(
    spec: Speakers, *, pulse_server: str | None = None, seconds: float = 1.0
) -> SpeakerCheck:
    """Play the tone; raises SpeakerError when the speakers cannot be opened."""
    monitor = ""
    if spec.driver == "pulse":
        try:
            sink = spec.device or default_sink(pulse_server)
            monitor = next((s.monitor for s in list_sinks(pulse_server) if s.name == sink), "")
        except PulseStreamError as err:
            raise SpeakerError(f"speakers: {err}") from err
    recorded: list[npt.NDArray[np.int16]] = []
    started = threading.Event()
    stop = threading.Event()
    rec_t0: list[float] = []

    def record() -> None:
        recording = Recording(monitor, fragment_ms=10, server=pulse_server)
        try:
            recording.open()
            rec_t0.append(time.monotonic())
            started.set()
            while not stop.is_set():
                recorded.append(recording.read(CHUNK))
        except PulseStreamError:
            started.set()
        finally:
            recording.close()

    listener = threading.Thread(target=record, name="speaker-check", daemon=True)
    if monitor:
        listener.start()
        started.wait(5)
    device = open_speaker(spec, pulse_server=pulse_server)
    pcm = tone(seconds=seconds)
    silence = np.zeros(CHUNK * 30, dtype=np.int16)  # flushes the tone through the buffer
    try:
        device.open()
        play_t0 = time.monotonic()
        for start in range(0, pcm.size, CHUNK):
            device.write(pcm[start : start + CHUNK])
        for start in range(0, silence.size, CHUNK):
            device.write(silence[start : start + CHUNK])
        time.sleep(device.latency_s() + 0.1)
    finally:
        device.close()
        stop.set()
        if monitor:
            listener.join(5)
    if not monitor or not rec_t0:
        return SpeakerCheck(True, monitor, False, None, None)
    heard = np.concatenate(recorded) if recorded else np.zeros(0, dtype=np.int16)
    loud = np.flatnonzero(np.abs(heard) > 32767 * 10 ** (HEARD_ABOVE_DBFS / 20))
    if loud.size == 0:
        return SpeakerCheck(True, monitor, False, tone_dbfs(heard), None)
    onset = int(loud[0])
    level = tone_dbfs(heard[onset + CHUNK : onset + CHUNK + RATE // 2])
    delay_ms = (rec_t0[0] + onset / RATE - play_t0) * 1000
    return SpeakerCheck(True, monitor, level > HEARD_ABOVE_DBFS, level, round(delay_ms, 1))
