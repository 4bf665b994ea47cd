"""RoomSound against a real PulseAudio: what is played comes out of the sink's monitor."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import av
import numpy as np
import pytest

from edge_agent.profile import Speakers
from edge_agent.room.errors import SpeakerError
from edge_agent.room.sound import RoomSound
from edge_agent.room.speaker import validate_speakers
from tests.peers.pulse import (
    RATE,
    PulseServer,
    after_onset,
    tone,
    tone_level,
    typical_tone_level,
)


class FarTap:
    """Stands in for the EchoCanceller: keeps what it is given as far end."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []

    def far(self, pcm: np.ndarray) -> None:
        self.chunks.append(pcm.copy())


def _frames(pcm: np.ndarray) -> list[av.AudioFrame]:
    """20 ms stereo frames as aiortc decodes them."""
    out = []
    for start in range(0, pcm.size - 959, 960):
        mono = pcm[start : start + 960]
        frame = av.AudioFrame.from_ndarray(
            np.repeat(mono, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = RATE
        out.append(frame)
    return out


def _feed(sound: RoomSound, source: str, pcm: np.ndarray) -> threading.Thread:
    """Push ``pcm`` in real time from a thread, as the network would."""

    def run() -> None:
        due = time.monotonic()
        for frame in _frames(pcm):
            sound.push(source, frame)
            due += 0.02
            time.sleep(max(0.0, due - time.monotonic()))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _playing(sound: RoomSound) -> None:
    """Wait until the speakers have played for a while, as an agent's have long before a
    lesson: a null sink that was idle stalls its first writes by about a second."""
    assert _wait(lambda: sound.chunks_played >= 150, 10.0), sound.stats()


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _sound(server: PulseServer, sink: str, **kwargs: object) -> RoomSound:
    spec = Speakers(driver="pulse", device=sink, latency_ms=40)
    return RoomSound(spec, pulse_server=server.server, **kwargs)  # type: ignore[arg-type]


def test_played_tone_comes_back_on_the_monitor(pulse_server: PulseServer, pulse_sink: str) -> None:
    tap = FarTap()
    sound = _sound(pulse_server, pulse_sink, echo=tap)
    sound.start()
    _playing(sound)
    try:
        with pulse_server.recorder(f"{pulse_sink}.monitor") as rec:
            feeder = _feed(sound, "city", tone(1000, 3.0, -12.0))
            assert rec.stdout is not None
            heard = np.frombuffer(rec.stdout.read(RATE * 2 * 4), dtype=np.int16)
            feeder.join()
    finally:
        sound.stop()
    loud = after_onset(heard, 1.0)
    assert loud.size == RATE, "the tone did not come out of the sink"
    assert abs(typical_tone_level(loud, 1000) - (-12.0)) < 1.0, sound.stats()
    # The echo canceller's far end is exactly the samples written, chunk by chunk.
    far = np.concatenate(tap.chunks)
    assert far.size == sound.chunks_played * 480
    assert abs(typical_tone_level(after_onset(far, 1.0), 1000) - (-12.0)) < 0.5
    stats = sound.stats()
    assert stats["device"] == "stopped" and stats["sources"]["city"]["underruns"] <= 1


def test_far_end_equals_the_monitor(pulse_server: PulseServer, pulse_sink: str) -> None:
    tap = FarTap()
    sound = _sound(pulse_server, pulse_sink, echo=tap)
    rng = np.random.default_rng(3)
    noise = (rng.standard_normal(RATE * 2) * 3000).astype(np.int16)
    with pulse_server.recorder(f"{pulse_sink}.monitor") as rec:
        sound.start()
        _playing(sound)
        try:
            _feed(sound, "city", noise).join()
            assert rec.stdout is not None
            heard = np.frombuffer(rec.stdout.read(RATE * 2 * 3), dtype=np.int16)
        finally:
            sound.stop()
    far = np.concatenate(tap.chunks)
    begin = int(np.argmax(np.abs(far) > 0))
    probe = far[begin + RATE // 2 : begin + RATE // 2 + 4800].astype(np.float64)
    corr = np.correlate(heard.astype(np.float64), probe, mode="valid")
    at = int(np.argmax(corr))
    match = heard[at : at + probe.size].astype(np.int32)
    assert np.abs(match - probe.astype(np.int32)).max() <= 2  # sample for sample


def test_two_sources_mixed_with_gains(pulse_server: PulseServer, pulse_sink: str) -> None:
    sound = _sound(pulse_server, pulse_sink)
    sound.set_gains({"village_a": -6.0, "village_b": float("-inf")})
    sound.start()
    _playing(sound)
    try:
        with pulse_server.recorder(f"{pulse_sink}.monitor") as rec:
            a = _feed(sound, "city", tone(1000, 3.0, -12.0))
            b = _feed(sound, "village_a", tone(700, 3.0, -12.0))
            c = _feed(sound, "village_b", tone(1300, 3.0, -12.0))
            assert _wait(lambda: sound.loudest() is not None, 3.0)
            assert rec.stdout is not None
            heard = np.frombuffer(rec.stdout.read(RATE * 2 * 4), dtype=np.int16)
            for feeder in (a, b, c):
                feeder.join()
    finally:
        sound.stop()
    loud = after_onset(heard, 1.0)
    assert abs(typical_tone_level(loud, 1000) - (-12.0)) < 1.0, sound.stats()
    assert abs(typical_tone_level(loud, 700) - (-18.0)) < 1.0, sound.stats()
    assert tone_level(loud, 1300) < -60.0


def test_sink_lost_and_back(pulse_server: PulseServer, pulse_sink: str) -> None:
    alerts: list[str | None] = []
    sound = _sound(pulse_server, pulse_sink, on_alert=alerts.append)
    sound._retry_first = 0.5  # keep the test short; the backoff shape is the same
    sound.start()
    _playing(sound)
    feeder = _feed(sound, "city", tone(1000, 8.0, -12.0))
    try:
        assert _wait(lambda: sound.stats()["device"] == "ok", 5.0)
        pulse_server.remove_sink(pulse_sink)
        assert _wait(lambda: bool(alerts) and alerts[-1] is not None, 5.0)
        assert alerts[-1] is not None and "(retrying)" in alerts[-1]
        assert alerts[-1].startswith("speakers:")
        time.sleep(1.0)
        # Still consumed while no speaker is open: the buffer does not grow.
        assert sound.stats()["sources"]["city"]["depth_ms"] < 250
        pulse_server.add_sink(pulse_sink)
        assert _wait(lambda: alerts[-1] is None, 12.0), alerts
        heard = pulse_server.record(f"{pulse_sink}.monitor", 1.0)
        assert tone_level(heard, 1000) > -20.0  # the sound resumed
    finally:
        sound.stop()
        feeder.join()


def test_missing_sink_is_refused_with_the_sinks_found(
    pulse_server: PulseServer, pulse_sink: str
) -> None:
    spec = Speakers(driver="pulse", device="panel_hdmi")
    with pytest.raises(SpeakerError) as caught:
        validate_speakers(spec, pulse_server=pulse_server.server)
    message = str(caught.value)
    assert "speakers.device = 'panel_hdmi'" in message
    assert pulse_sink in message and "Set speakers.device" in message
    validate_speakers(Speakers(device=pulse_sink), pulse_server=pulse_server.server)


def test_speakers_cpu_counts_their_own_libpulse_thread_not_the_microphones(
    pulse_server: PulseServer, pulse_sink: str
) -> None:
    """The room's CPU figure takes the speakers' libpulse thread and leaves out the one a
    microphone stream opened beside it has (that is capture, not the room)."""
    from edge_agent.room.pulse import Recording, pulse_threads
    from edge_agent.room.thread_cpu import ThreadCpu

    sound = _sound(pulse_server, pulse_sink)
    mic = Recording(f"{pulse_sink}.monitor", server=pulse_server.server)
    sound.start()
    try:
        _playing(sound)
        mic.open()
        speaker_threads = sound.device_threads()
        assert len(speaker_threads) == 1, speaker_threads
        assert len(mic.threads) == 1 and mic.threads.isdisjoint(speaker_threads)
        assert speaker_threads | mic.threads <= pulse_threads()
        assert sound.native_id is not None and sound.watcher_id is not None
        cpu = ThreadCpu().seconds({"sound": sound.native_id}, speaker_threads)
        assert set(cpu) == {"sound", "pulse", "room", "process"}
    finally:
        mic.close()
        sound.stop()
