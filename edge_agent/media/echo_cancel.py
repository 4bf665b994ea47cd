"""Acoustic echo cancellation for the classroom microphone (the WebRTC audio-processing module).

The panel's loudspeakers play the remote classroom; open ceiling microphones pick that up
and, without cancellation, send it back, so the remote side hears itself and the link can
howl. aiortc has no echo canceller, so the agent runs WebRTC's audio-processing module
(AEC3 with noise suppression, high-pass filter and gain control) through LiveKit's
maintained Python binding, which ships it prebuilt for Linux.

Feed every 10 ms of what the speakers play to :meth:`EchoCanceller.far` and every 10 ms of
microphone signal through :meth:`EchoCanceller.near`; both take 48 kHz mono int16. The
module estimates the echo path itself; ``delay_ms`` is a starting hint for the
playout-to-capture delay of the room's audio chain.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt
from livekit import rtc

RATE = 48000
CHUNK = RATE // 100  # the module works in 10 ms frames


class EchoCanceller:
    """Cancels the far-end (speaker) signal out of the near-end (microphone) signal."""

    def __init__(
        self,
        *,
        delay_ms: int = 50,
        noise_suppression: bool = True,
        gain_control: bool = True,
    ) -> None:
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True,
            noise_suppression=noise_suppression,
            high_pass_filter=True,
            auto_gain_control=gain_control,
        )
        self._apm.set_stream_delay_ms(delay_ms)
        self._lock = threading.Lock()
        self._far_rest = np.zeros(0, dtype=np.int16)
        self._near_rest = np.zeros(0, dtype=np.int16)
        self.far_frames = 0
        self.near_frames = 0

    def far(self, pcm: npt.NDArray[np.int16]) -> None:
        """What the loudspeakers are about to play (any length; kept in 10 ms frames)."""
        with self._lock:
            data = np.concatenate([self._far_rest, pcm.astype(np.int16, copy=False)])
            whole = data.size - data.size % CHUNK
            for start in range(0, whole, CHUNK):
                self._apm.process_reverse_stream(_frame(data[start : start + CHUNK]))
                self.far_frames += 1
            self._far_rest = data[whole:].copy()

    def near(self, pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """The microphone signal with the echo removed (same length as given, delayed by
        at most one 10 ms frame while a partial frame waits)."""
        with self._lock:
            data = np.concatenate([self._near_rest, pcm.astype(np.int16, copy=False)])
            whole = data.size - data.size % CHUNK
            out: list[npt.NDArray[np.int16]] = []
            for start in range(0, whole, CHUNK):
                frame = _frame(data[start : start + CHUNK])
                self._apm.process_stream(frame)
                out.append(np.frombuffer(frame.data, dtype=np.int16).copy())
                self.near_frames += 1
            self._near_rest = data[whole:].copy()
        processed = np.concatenate(out) if out else np.zeros(0, dtype=np.int16)
        if processed.size < pcm.size:  # first call with a partial frame: pad with silence
            processed = np.concatenate(
                [np.zeros(pcm.size - processed.size, dtype=np.int16), processed]
            )
        return processed[-pcm.size :] if pcm.size else processed


def _frame(chunk: npt.NDArray[np.int16]) -> Any:
    return rtc.AudioFrame(chunk.tobytes(), RATE, 1, CHUNK)
