"""The room's speakers (扬声器): validate the profile's choice, open it, write 10 ms at a time.

Two drivers behind one small interface (:class:`SpeakerDevice`):

- ``pulse``: a PulseAudio/PipeWire sink by name, through the simple API; the server keeps
  ``latency_ms`` queued, so each 10 ms write blocks until there is room: the speaker's
  clock paces the caller.
- ``alsa``: an ALSA playback PCM through PyAV's bundled FFmpeg (its ``alsa`` output
  format), so no ALSA calls are written by hand. FFmpeg picks the ALSA buffer size itself
  (``latency_ms`` cannot be set), and reports the latency only roughly.
"""

from __future__ import annotations

import contextlib
import pathlib
import re
from fractions import Fraction
from typing import Any, Protocol

import av
import numpy as np
import numpy.typing as npt

from edge_agent.profile import Speakers
from edge_agent.room.errors import PulseStreamError, SpeakerError
from edge_agent.room.pulse import RATE, Playback, default_sink, list_sinks

CHUNK = RATE // 100  # 10 ms


class SpeakerDevice(Protocol):
    """A playback device written in 10 ms chunks of int16 (mono ``(n,)`` or stereo ``(n, 2)``)."""

    def open(self) -> None:
        """Open the device; raises :class:`SpeakerError`."""

    def write(self, pcm: npt.NDArray[np.int16]) -> None:
        """Play a chunk; blocks while the device's buffer is full; raises SpeakerError."""

    def latency_s(self) -> float:
        """How long a sample written now takes to be heard (best estimate)."""

    def check(self) -> None:
        """Raise :class:`SpeakerError` if the sound no longer goes where it should."""

    def close(self) -> None:
        """Close the device (safe to call twice, or when open failed)."""


def _stereo(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    if pcm.ndim == 2:
        return pcm
    return np.repeat(pcm.reshape(-1, 1), 2, axis=1)


class PulseSpeaker:
    """Speakers on a PulseAudio sink (stereo, the same sound on both sides)."""

    def __init__(self, spec: Speakers, *, server: str | None = None) -> None:
        self.sink = spec.device
        self._playback = Playback(
            spec.device, channels=2, latency_ms=spec.latency_ms, server=server
        )

    def open(self) -> None:
        """Connect a playback stream to the sink."""
        try:
            self._playback.open()
        except PulseStreamError as err:
            raise SpeakerError(f"speakers: {err}") from err

    def write(self, pcm: npt.NDArray[np.int16]) -> None:
        """Queue one chunk (mono is sent to both channels)."""
        try:
            self._playback.write(_stereo(pcm))
        except PulseStreamError as err:
            raise SpeakerError(f"speakers: {err}") from err

    @property
    def threads(self) -> set[int]:
        """libpulse's thread playing this stream (its OS id), for CPU accounting."""
        return set(self._playback.threads)

    def latency_s(self) -> float:
        """PulseAudio's own measure of the stream's latency."""
        return self._playback.latency_s()

    def check(self) -> None:
        """The stream still plays into the profile's sink (not moved to another when the
        sink went away); the default sink (``device = ""``) may be any."""
        if not self.sink:
            return
        now = self._playback.sink_now()
        if now is not None and now != self.sink:
            raise SpeakerError(
                f"speakers: sink {self.sink} is gone (PulseAudio moved the sound to {now}); "
                "check the panel's HDMI/amplifier is on and plugged in"
            )

    def close(self) -> None:
        """Drop the stream."""
        self._playback.close()


class AlsaSpeaker:
    """Speakers on an ALSA PCM, through FFmpeg's ``alsa`` output (PyAV)."""

    def __init__(self, spec: Speakers) -> None:
        self.device = spec.device
        self._container: Any = None
        self._stream: Any = None
        self._pts = 0

    def open(self) -> None:
        """Open the PCM for 48 kHz stereo s16."""
        try:
            self._container = av.open(self.device, "w", format="alsa")
            self._stream = self._container.add_stream("pcm_s16le", rate=RATE, layout="stereo")
        except (av.FFmpegError, OSError, ValueError) as err:
            self.close()
            raise SpeakerError(
                f"speakers: cannot open ALSA PCM {self.device!r}: {err}; 'aplay -L' lists the "
                "playback PCMs (is another program holding the card?)"
            ) from err
        self._pts = 0

    def write(self, pcm: npt.NDArray[np.int16]) -> None:
        """Play one chunk; FFmpeg's write blocks while ALSA's buffer is full."""
        if self._container is None:
            raise SpeakerError(f"speakers: ALSA PCM {self.device!r} is not open")
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(_stereo(pcm)).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = Fraction(1, RATE)
        self._pts += frame.samples
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as err:
            raise SpeakerError(
                f"speakers: ALSA PCM {self.device!r} stopped: {err} (card unplugged?)"
            ) from err

    def latency_s(self) -> float:
        """Not measured through FFmpeg: an estimate (FFmpeg sizes ALSA's buffer itself)."""
        return 0.1

    def check(self) -> None:
        """An ALSA device that goes away fails its next write; nothing to check here."""

    def close(self) -> None:
        """Close the PCM."""
        container, self._container, self._stream = self._container, None, None
        if container is not None:
            # A PCM that vanished cannot be drained; it is closed either way.
            with contextlib.suppress(av.FFmpegError, OSError):
                container.close()


def open_speaker(spec: Speakers, *, pulse_server: str | None = None) -> SpeakerDevice:
    """A (not yet opened) device for the profile's speakers."""
    if spec.driver == "alsa":
        return AlsaSpeaker(spec)
    return PulseSpeaker(spec, server=pulse_server)


def validate_speakers(spec: Speakers, *, pulse_server: str | None = None) -> None:
    """Check that the profile's speakers exist on this box; raises :class:`SpeakerError`."""
    if spec.driver == "alsa":
        _validate_alsa(spec.device)
        return
    try:
        sinks = list_sinks(pulse_server)
        wanted = spec.device or default_sink(pulse_server)
    except PulseStreamError as err:
        raise SpeakerError(f"speakers.driver = 'pulse': {err}") from err
    names = [s.name for s in sinks]
    if wanted and wanted in names:
        return
    found = ", ".join(f"{s.name} ({s.description})" for s in sinks) or "none"
    if not spec.device:
        raise SpeakerError(
            f"speakers.device = '' (the default sink) but the sound server has no default "
            f"sink; sinks found: {found}. Set speakers.device to one of them in the profile"
        )
    raise SpeakerError(
        f"speakers.device = {spec.device!r}: no such PulseAudio sink; sinks found: {found}. "
        "Set speakers.device to one of them in the profile ('pactl list short sinks')"
    )


def _validate_alsa(device: str) -> None:
    """An ``hw:``/``plughw:`` PCM must name a card that is there; other PCMs are trusted."""
    match = re.match(r"^(?:plug)?hw:(?:CARD=)?([^,]+)", device)
    if match is None:
        return
    card = match.group(1)
    cards_file = pathlib.Path("/proc/asound/cards")
    text = cards_file.read_text() if cards_file.exists() else ""
    ids = re.findall(r"^\s*(\d+)\s+\[(\S+)\s*\]", text, flags=re.MULTILINE)
    known = {n for pair in ids for n in pair}
    if card not in known:
        found = ", ".join(f"{i} [{name}]" for i, name in ids) or "none"
        raise SpeakerError(
            f"speakers.device = {device!r}: no ALSA card {card!r}; cards found: {found}. "
            "Set speakers.device to one of them ('aplay -L' lists the playback PCMs)"
        )
