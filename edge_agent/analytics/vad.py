"""Voice activity on the classroom microphone: WebRTC's voice-activity detector.

``webrtcvad`` (the maintained ``webrtcvad-wheels`` build, prebuilt for Linux) classifies
10, 20 or 30 ms frames of 8–48 kHz mono int16 as speech or not; it reads our 48 kHz
microphone as it is, at about 20 µs a frame. A frame quieter than ``floor_dbfs`` is never
speech: what is left of the loudspeakers' sound after the echo canceller, or the hum of a
projector, is quiet, and the detector on its own can take steady noise for a voice.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import webrtcvad

RATE = 48000
FRAME = RATE * 30 // 1000  # 30 ms


class VoiceDetector:
    """Counts the 30 ms frames of speech in the microphone's samples, as they come."""

    def __init__(self, aggressiveness: int = 2, floor_dbfs: float = -50.0) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {aggressiveness}")
        self._vad = webrtcvad.Vad(aggressiveness)
        self._floor = (32768.0 * 10 ** (floor_dbfs / 20)) ** 2 * FRAME
        self._rest = np.zeros(0, dtype=np.int16)

    def frames(self, pcm: npt.NDArray[np.int16]) -> list[bool]:
        """For each whole 30 ms frame completed by ``pcm``, whether it is speech (a partial
        frame waits for the next call)."""
        data = np.concatenate([self._rest, pcm.astype(np.int16, copy=False)])
        whole = data.size - data.size % FRAME
        out = []
        for start in range(0, whole, FRAME):
            frame = data[start : start + FRAME]
            energy = float(np.dot(frame.astype(np.float32), frame.astype(np.float32)))
            out.append(energy > self._floor and self._vad.is_speech(frame.tobytes(), RATE))
        self._rest = data[whole:].copy()
        return out


def level_dbfs(pcm: npt.NDArray[np.int16]) -> float:
    """RMS level of ``pcm`` in dBFS (−inf for silence)."""
    if pcm.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    return 20 * math.log10(rms / 32768.0) if rms > 0 else -math.inf
