"""A PulseAudio/PipeWire microphone: a source by name, read in 20 ms (48 kHz mono s16).

PyAV's bundled FFmpeg has no ``pulse`` input device, so the ``pulse`` microphone driver
records through PulseAudio's simple API (:mod:`edge_agent.room.pulse`) and hands frames
to :class:`~edge_agent.media.capture_runner.CaptureRunner`, which meters, filters and
encodes them exactly as it does an ALSA microphone's, under the same supervision.
"""

from __future__ import annotations

from collections.abc import Iterator

import av

from edge_agent.media.capture_runner import AUDIO_SAMPLES
from edge_agent.room.pulse import RATE, Recording


class PulseMicrophone:
    """Frames from a PulseAudio source; raises PulseStreamError when it breaks."""

    def __init__(self, source: str, *, server: str | None = None) -> None:
        self._recording = Recording(source, fragment_ms=20, server=server)

    def open(self) -> None:
        """Connect the recording stream (raises PulseStreamError)."""
        self._recording.open()

    def frames(self) -> Iterator[av.AudioFrame]:
        """20 ms mono s16 frames at 48 kHz, as they are recorded."""
        while True:
            pcm = self._recording.read(AUDIO_SAMPLES)
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = RATE
            yield frame

    def close(self) -> None:
        """Drop the stream."""
        self._recording.close()
