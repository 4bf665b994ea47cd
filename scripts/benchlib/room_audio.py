"""Test sounds for a room's "mouth", and what a speaker's monitor tells about them.

Each room's mouth is a speech-like tone (amplitude-modulated at syllable rate, so noise
suppression keeps it) plus a short burst at a frequency of its own, placed on the wall
clock: the lead's burst starts on every whole second, a receiving room's on its own
offset within the second. A burst heard at a speaker therefore tells its own one-way
delay (arrival time minus the second it was sent on), with no timestamp on the wire.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import wave
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

RATE = 48000
BURST_S = 0.010
WINDOW = 240  # 5 ms analysis window
HOP = 48  # 1 ms


def _one_cycle(points: int) -> npt.NDArray[np.float64]:
    """One cycle of the voiced sound, at ``points`` + 1 phases (the last is the first):
    16 harmonics of the fundamental, the 4th the loudest. Read by phase, it saves a room
    simulator 16 sines per block (on two cores, CPU the agents under test need)."""
    theta = 2 * math.pi * np.arange(points + 1) / points
    cycle = np.zeros(points + 1)
    for k in range(1, 17):
        weight = 1.0 if k == 4 else 0.35 / k**0.5
        cycle += weight * np.sin(k * theta + k)
    return cycle


_CYCLE_POINTS = 8192
_CYCLE = _one_cycle(_CYCLE_POINTS)
_CYCLE_AT = np.arange(_CYCLE_POINTS + 1, dtype=np.float64)


@dataclass(frozen=True)
class Voice:
    """One room's mouth: its tone, its burst frequency and where in the second it bursts.

    Like speech, it is not periodic: its loudness follows two slow rates of its own that
    never line up (a periodic test signal fools an echo canceller's delay estimate), and
    a breath of noise under the tone excites every band the way voices do.
    """

    tone_hz: float
    burst_hz: float
    offset_s: float = 0.0
    syllable_hz: tuple[float, float] = (3.1, 1.37)
    tone_dbfs: float = -26.0
    noise_dbfs: float = -36.0
    burst_dbfs: float = -10.0
    # Talks only in every other ``turn_s`` seconds (a class answering its teacher); 0: always.
    turn_s: int = 0
    # Bursts in every second (the agent's synthetic microphone clicks on each one), not
    # in two seconds in three.
    every_second: bool = False
    # Recorded speech to say instead of the tone (48 kHz mono), looped on the wall clock.
    speech: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)

    def block(self, start_wall: float, n: int) -> npt.NDArray[np.float32]:
        """``n`` samples that start playing at wall time ``start_wall``."""
        t = start_wall + np.arange(n, dtype=np.float64) / RATE
        a, b = self.syllable_hz
        envelope = 0.55 + 0.45 * np.sin(2 * math.pi * a * t) * np.cos(2 * math.pi * b * t)
        # A voice is a harmonic series on a low fundamental (tone_hz is its 4th harmonic,
        # the loudest), not a pure tone: it excites the bands an echo canceller models.
        f0 = self.tone_hz / 4
        voiced = np.interp(np.mod(f0 * t, 1.0) * _CYCLE_POINTS, _CYCLE_AT, _CYCLE)
        out = 10 ** (self.tone_dbfs / 20) * envelope * voiced
        out += 10 ** (self.noise_dbfs / 20) * envelope * _RNG.standard_normal(n)
        if self.speech is not None:
            at = np.round(t * RATE).astype(np.int64) % self.speech.size
            out = self.speech[at].astype(np.float64)
        phase = np.mod(t - self.offset_s, 1.0)
        burst = (phase < BURST_S) & self.speaks_in(np.floor(t - self.offset_s))
        out = np.where(
            burst, 10 ** (self.burst_dbfs / 20) * np.sin(2 * math.pi * self.burst_hz * t), out
        )
        return (out * self.talking(t)).astype(np.float32)

    def talking(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Whether this room talks at wall times ``t`` (its turns, if it takes turns)."""
        if not self.turn_s:
            return np.ones(t.shape, dtype=bool)
        return np.asarray(np.floor(t / self.turn_s).astype(np.int64) % 2 == 1)

    def speaks_in(self, second: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Whether the burst sounds in each wall-clock second: two seconds in three, in a
        pattern of the voice's own, so the bursts are not periodic either."""
        if self.every_second:
            return self.talking(second + self.offset_s)
        mixed = (second.astype(np.int64) * 2654435761 + int(self.burst_hz)) % 1000003
        return np.asarray(mixed % 3 != 0) & self.talking(second + self.offset_s)


_RNG = np.random.default_rng(20261204)
LEAD_VOICE = Voice(tone_hz=440.0, burst_hz=2000.0, offset_s=0.0, syllable_hz=(3.1, 1.37))
# What the agent's synthetic microphone says: a 2 kHz click on every whole second.
SYNTHETIC_CLICKS = Voice(tone_hz=440.0, burst_hz=2000.0, every_second=True)
RECEIVER_VOICES = [
    Voice(tone_hz=620.0, burst_hz=3000.0, offset_s=0.5, syllable_hz=(2.3, 0.71)),
    Voice(tone_hz=820.0, burst_hz=3600.0, offset_s=0.25, syllable_hz=(3.7, 1.13)),
    Voice(tone_hz=1020.0, burst_hz=4200.0, offset_s=0.75, syllable_hz=(2.9, 0.53)),
]


SPEECH = {
    "lead": (
        "zh",
        40,
        "同学们好。今天我们学习分数的加法。请大家看黑板上的这道题，二分之一加四分之一等于多少？",
    ),
    "receiver": (
        "en",
        75,
        "Teacher, I think it is three quarters, because a half is two quarters.",
    ),
}


def speaking(voice: Voice, who: str, level_dbfs: float = -24.0) -> Voice:
    """``voice`` reading a text aloud (espeak-ng, Debian's speech synthesiser), with its
    bursts: real speech is what an echo canceller is made for, a test tone is not."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed; scripts/bootstrap installs it")
    lang, pitch, text = SPEECH[who]
    wav = subprocess.run(
        ["espeak-ng", "-v", lang, "-p", str(pitch), "-s", "150", "--stdout", text],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64) / 32768
    t = np.arange(int(x.size * RATE / rate)) * rate / RATE
    y = np.interp(t, np.arange(x.size), x)
    rms = float(np.sqrt(np.mean(y**2))) or 1.0
    return replace(voice, speech=(y / rms * 10 ** (level_dbfs / 20)).astype(np.float32))


def band_envelope(x: npt.NDArray[np.float32], hz: float) -> npt.NDArray[np.float64]:
    """Amplitude at ``hz`` in 5 ms windows every 1 ms (a sliding single-bin DFT)."""
    n = np.arange(x.size)
    z = x.astype(np.float64) * np.exp(-2j * math.pi * hz * n / RATE)
    c = np.concatenate([[0], np.cumsum(z)])
    starts = np.arange(0, max(0, x.size - WINDOW), HOP)
    sums = c[starts + WINDOW] - c[starts]
    return np.asarray(2 * np.abs(sums) / WINDOW, dtype=np.float64)


def burst_onsets(
    x: npt.NDArray[np.float32], t0: float, voice: Voice, floor_dbfs: float = -40.0
) -> list[float]:
    """Wall times at which ``voice``'s bursts begin in a recording that starts at ``t0``."""
    env = band_envelope(x, voice.burst_hz)
    if env.size == 0:
        return []
    floor = 10 ** (floor_dbfs / 20)
    peak = float(np.percentile(env, 99.5))
    threshold = max(floor, peak / 3)
    above = env > threshold
    onsets: list[float] = []
    last = -math.inf
    for i in np.flatnonzero(above & ~np.concatenate([[False], above[:-1]])):
        when = t0 + i * HOP / RATE
        if when - last > 0.3:
            onsets.append(when)
            last = when
    return onsets


def onset_in(
    x: npt.NDArray[np.float32], t0: float, hz: float, lo: float, hi: float
) -> float | None:
    """When a burst at ``hz`` begins between wall times ``lo`` and ``hi``: the first moment
    its level reaches half of the window's peak, if that peak stands clear of the rest."""
    a, b = max(0, int((lo - t0) * RATE)), max(0, int((hi - t0) * RATE))
    if b - a < WINDOW * 4:
        return None
    env = band_envelope(x[a:b], hz)
    peak = float(env.max(initial=0.0))
    if peak < 10 ** (-45 / 20) or peak < 8 * float(np.median(env)):
        return None
    first = int(np.argmax(env >= peak / 2))
    return t0 + (a + first * HOP) / RATE


def delays_ms(onsets: list[float], voice: Voice, early_s: float = 0.1) -> list[float]:
    """One-way delay of each burst: arrival minus the wall-clock moment it was sent.

    Delays are read in (−early_s, 1 − early_s): the harness's own clocks may put a burst a
    few milliseconds before its second (see the calibration in bench-room).
    """
    return [(((when - voice.offset_s + early_s) % 1.0) - early_s) * 1000.0 for when in onsets]


def band_level_db(x: npt.NDArray[np.float32], hz: float) -> float:
    """Mean power at ``hz`` (dBFS of a sine's amplitude)."""
    env = band_envelope(x, hz)
    if env.size == 0:
        return -math.inf
    power = float(np.mean(env**2))
    return 10 * math.log10(power) if power > 0 else -math.inf


def rms_dbfs(x: npt.NDArray[np.float32]) -> float:
    """RMS level in dBFS."""
    if x.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def silent_windows(x: npt.NDArray[np.float32], below_dbfs: float = -70.0) -> npt.NDArray[np.bool_]:
    """For each 5 ms window (every 1 ms), whether it is quieter than ``below_dbfs``."""
    if x.size < WINDOW:
        return np.zeros(0, dtype=bool)
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    starts = np.arange(0, x.size - WINDOW, HOP)
    rms = np.sqrt((c[starts + WINDOW] - c[starts]) / WINDOW)
    return np.asarray(rms < 10 ** (below_dbfs / 20))


def longest_run_ms(mask: npt.NDArray[np.bool_]) -> float:
    """The longest run of true windows in a ``silent_windows`` mask, in ms."""
    best = run = 0
    for q in mask:
        run = run + 1 if q else 0
        best = max(best, run)
    return 0.0 if best == 0 else (best * HOP + WINDOW - HOP) / RATE * 1000.0


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile, or None for no values."""
    return float(np.percentile(values, q)) if values else None


def burst_peaks(
    x: npt.NDArray[np.float32],
    t0: float,
    voice: Voice,
    phase: tuple[float, float] = (0.0, 0.5),
    quiet: Voice | None = None,
) -> list[float]:
    """Per second, the loudest moment of ``voice``'s burst frequency within ``phase`` of
    the second after each burst was said (amplitude); gating by time keeps the other
    room's own sounds out of the reading."""
    env = band_envelope(x, voice.burst_hz)
    if env.size == 0:
        return []
    times = t0 + np.arange(env.size) * HOP / RATE
    since = np.mod(times - voice.offset_s, 1.0)
    second = np.floor(times - voice.offset_s)
    inside = (since >= phase[0]) & (since < phase[1])
    out = []
    spoken = np.unique(second[inside])
    spoken = spoken[voice.speaks_in(spoken)]
    if quiet is not None:  # only seconds in which the other room is silent throughout
        start = spoken + voice.offset_s
        spoken = spoken[~quiet.talking(start) & ~quiet.talking(start + 1.0)]
    for s in spoken:
        sel = inside & (second == s)
        if sel.sum() >= (phase[1] - phase[0]) * 900:  # a whole window, not a torn edge
            out.append(float(env[sel].max()))
    return out


def echo_return_db(
    back: npt.NDArray[np.float32],
    t_back: float,
    heard: npt.NDArray[np.float32],
    t_heard: float,
    voice: Voice,
    listener: Voice | None = None,
) -> float:
    """The talker's bursts as they come back at the talker's speakers (echo, within 0.45 s)
    against as they are heard at the listener's speakers, median of per-second peaks.

    The echo window ends before the other room's own burst (half a second later) comes;
    seconds in which the ``listener`` room talks are left out (its speech would be read
    as echo): this is the echo a talker hears while the other room listens."""
    echo = burst_peaks(back, t_back, voice, (0.05, 0.45), listener)
    direct = burst_peaks(heard, t_heard, voice, (0.0, 0.5), listener)
    if not echo or not direct:
        return math.nan
    e, d = float(np.median(echo)), float(np.median(direct))
    return 20 * math.log10(max(e, 1e-9) / max(d, 1e-9))
