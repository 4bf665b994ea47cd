"""The adaptive playout buffer on a fake clock: steady, jittery and bursty arrivals."""

from __future__ import annotations

import random

import av
import numpy as np

from edge_agent.room.playout import CHUNK, PlayoutBuffer

FRAME = 960  # 20 ms, as aiortc decodes Opus


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _frames(n: int, value: int = 1000) -> list[np.ndarray]:
    return [np.full(FRAME, value, dtype=np.int16) for _ in range(n)]


def _run(buffer: PlayoutBuffer, clock: Clock, arrivals: list[float], seconds: float) -> int:
    """Speaker pulls every 10 ms from the clock's now on; frames arrive at the given times
    (consumed from ``arrivals``, which must be sorted). Returns the silent pulls."""
    pending = arrivals
    silent = 0
    start = clock.now
    for tick in range(int(seconds * 100)):
        clock.now = start + tick * 0.01
        while pending and pending[0] <= clock.now:
            buffer.push_pcm(np.full(FRAME, 1000, dtype=np.int16), pending.pop(0))
        silent += int(not buffer.pull().any())
    return silent


def test_steady_arrivals_play_without_gaps() -> None:
    clock = Clock()
    buffer = PlayoutBuffer(clock=clock)
    _run(buffer, clock, [100.0 + i * 0.02 for i in range(500)], 10.0)
    stats = buffer.stats()
    assert stats.underruns == 0 and stats.gap_max_ms == 0
    assert stats.target_ms == 40.0  # the floor: one packet and a chunk above no jitter
    assert stats.depth_ms <= 40.0


def test_jittery_arrivals_grow_the_target_and_stay_smooth() -> None:
    clock = Clock()
    buffer = PlayoutBuffer(clock=clock)
    rng = random.Random(1)
    arrivals = sorted(100.0 + i * 0.02 + rng.uniform(0, 0.06) for i in range(1000))
    _run(buffer, clock, list(arrivals), 20.0)
    stats = buffer.stats()
    assert 50.0 <= stats.target_ms <= 80.0, stats
    # Once the target has grown, the jitter no longer empties the buffer.
    before = stats.underruns
    clock.now += 0.01
    _run(buffer, clock, [a + 20.0 for a in sorted(arrivals)], 20.0)
    assert buffer.stats().underruns - before <= 2, buffer.stats()


def test_a_burst_drains_back_to_the_target() -> None:
    clock = Clock()
    buffer = PlayoutBuffer(clock=clock)
    # 1 s of silence from the network then 1 s of audio in one burst, then steady again.
    arrivals = [101.0] * 50 + [101.0 + i * 0.02 for i in range(1, 400)]
    _run(buffer, clock, arrivals, 3.0)
    assert buffer.stats().target_ms == 200.0  # the burst itself was a jitter of 1 s, capped
    clock.now += 0.01
    _run(buffer, clock, arrivals, 6.0)
    stats = buffer.stats()
    assert stats.dropped_ms >= 500, stats
    # The burst has left the jitter window: back to the smallest target and depth.
    assert stats.target_ms == 40.0, stats
    assert stats.depth_ms <= stats.target_ms + 30, stats
    assert stats.underruns == 0, stats


def test_underrun_conceals_with_silence_and_measures_the_gap() -> None:
    clock = Clock()
    buffer = PlayoutBuffer(clock=clock)
    arrivals = [100.0 + i * 0.02 for i in range(100)] + [
        102.3 + i * 0.02 for i in range(100)
    ]  # 300 ms missing
    _run(buffer, clock, arrivals, 4.25)
    stats = buffer.stats()
    assert stats.underruns == 1, stats
    # 300 ms missing, then the refill to the target the outage raised (at most 200 ms).
    assert 280 <= stats.gap_max_ms <= 520, stats


def test_any_layout_becomes_mono_48k() -> None:
    buffer = PlayoutBuffer()
    stereo = np.zeros((1, FRAME * 2), dtype=np.int16)
    stereo[0, 0::2] = 2000
    stereo[0, 1::2] = 0
    frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate = 48000
    for _ in range(3):
        buffer.push(frame)
    out = np.concatenate([buffer.pull() for _ in range(6)])
    assert out.size == 6 * CHUNK
    assert 900 <= int(np.median(out[CHUNK * 2 :])) <= 1100  # the average of both sides
