"""The mixer: gains, mute, volume and a limiter that never lets the output clip."""

from __future__ import annotations

import math

import numpy as np

from edge_agent.room.mixer import Mixer

RATE = 48000


def _sine(freq: float, dbfs: float, chunks: int) -> list[np.ndarray]:
    t = np.arange(chunks * 480) / RATE
    pcm = (np.sin(2 * np.pi * freq * t) * 32767 * 10 ** (dbfs / 20)).astype(np.int16)
    return [pcm[i * 480 : (i + 1) * 480] for i in range(chunks)]


def _amp(pcm: np.ndarray, freq: float) -> float:
    t = np.arange(pcm.size) / RATE
    return float(2 * abs(np.dot(pcm / 32767, np.exp(-2j * np.pi * freq * t))) / pcm.size)


def test_loud_room_is_limited_and_the_quiet_room_still_heard() -> None:
    mixer = Mixer()
    loud, quiet = _sine(440, 0.0, 100), _sine(1000, -30.0, 100)
    out = np.concatenate(
        [mixer.mix({"city": a, "village": b}, {}) for a, b in zip(loud, quiet, strict=True)]
    )
    ceiling = 32768 * 10 ** (-1 / 20)
    assert np.abs(out.astype(np.int32)).max() <= ceiling
    assert np.abs(out.astype(np.int32)).max() < 32767
    # Still there, turned down by no more than the limiter's few dB.
    assert 20 * math.log10(_amp(out[RATE // 2 :], 1000)) > -36.0
    assert mixer.levels()["city"] > mixer.levels()["village"] + 25


def test_gains_are_respected_and_a_muted_room_is_absent() -> None:
    mixer = Mixer()
    a, b = _sine(500, -20.0, 50), _sine(1500, -20.0, 50)
    out = np.concatenate(
        [
            mixer.mix({"a": x, "b": y}, {"a": -6.0, "b": float("-inf")})
            for x, y in zip(a, b, strict=True)
        ]
    )
    assert abs(20 * math.log10(_amp(out, 500)) - (-26.0)) < 0.3
    assert _amp(out, 1500) < 1e-4
    assert mixer.level_dbfs("b") > -25  # a muted room is still metered (who is talking)


def test_volume_applies_to_the_sum() -> None:
    mixer = Mixer(volume_db=-10.0)
    out = np.concatenate([mixer.mix({"a": x}, {}) for x in _sine(800, -10.0, 20)])
    assert abs(20 * math.log10(_amp(out, 800)) - (-20.0)) < 0.3


def test_limiter_releases_smoothly_after_a_peak() -> None:
    mixer = Mixer(release_ms=100)
    peak = [np.full(480, 32767, dtype=np.int16)]
    quiet = _sine(1000, -20.0, 60)
    outs = [mixer.mix({"a": c}, {}) for c in peak + quiet]
    first = _amp(outs[1], 1000)
    last = _amp(outs[-1], 1000)
    assert first < last  # still recovering right after the peak
    assert abs(20 * math.log10(last) - (-20.0)) < 0.5  # fully back after 600 ms
