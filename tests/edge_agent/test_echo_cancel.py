"""Echo cancellation: a synthetic far end mixed into the microphone at a known delay.

Echo return loss enhancement must reach 20 dB once the canceller has converged, and a
near-end talker during double talk must come through with its spectral shape kept (the
correlation of the short-time spectra of the output with the clean near-end voice, a
simple stand-in for an intelligibility score).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from edge_agent.media.echo_cancel import CHUNK, RATE, EchoCanceller

SECONDS = 16
DELAY_S = 0.060


def voice(f0: float, syllables_hz: float, seed: int) -> npt.NDArray[np.float64]:
    """A speech-like signal: a gliding harmonic series gated by a syllable envelope."""
    t = np.arange(SECONDS * RATE) / RATE
    rng = np.random.default_rng(seed)
    phase = 2 * math.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * math.pi * 0.5 * t))) / RATE
    harmonics = sum((1 / k) * np.sin(k * phase) for k in range(1, 12))
    envelope = np.clip(np.sin(2 * math.pi * syllables_hz * t), 0, None) ** 0.5
    return np.asarray(harmonics * envelope + 0.02 * rng.standard_normal(t.size))


def power(x: npt.NDArray[np.float64]) -> float:
    return float(np.mean(x**2)) + 1e-9


def spectra(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    n = 1024
    frames = [x[i : i + n] * np.hanning(n) for i in range(0, x.size - n, n // 2)]
    mags = np.abs(np.fft.rfft(np.array(frames), axis=1))
    band = slice(int(300 * n / RATE), int(4000 * n / RATE))
    return np.asarray(np.log10(mags[:, band] + 1.0))


def run(canceller: EchoCanceller) -> tuple[npt.NDArray[np.float64], ...]:
    far = 6000 * voice(140, 3.3, 1)
    far[12 * RATE : 14 * RATE] = 0  # the remote teacher pauses: near end talks alone
    delay = int(DELAY_S * RATE)
    echo = np.zeros_like(far)
    echo[delay:] = 0.5 * far[:-delay]
    near = np.zeros_like(far)
    talk = slice(12 * RATE, 16 * RATE)
    near[talk] = 5000 * voice(230, 2.7, 2)[talk]
    mic = echo + near
    out = []
    step = 2 * CHUNK  # 20 ms, as the capture runner delivers
    for start in range(0, mic.size, step):
        canceller.far(far[start : start + step].astype(np.int16))
        out.append(canceller.near(mic[start : start + step].astype(np.int16)))
    return far, echo, near, mic, np.concatenate(out).astype(np.float64)


def test_echo_return_loss_enhancement_is_at_least_20_db() -> None:
    _, _, _, mic, out = run(EchoCanceller(delay_ms=round(DELAY_S * 1000)))
    window = slice(5 * RATE, 11 * RATE)  # far end only, after convergence
    erle = 10 * math.log10(power(mic[window]) / power(out[window]))
    assert erle >= 20.0, f"ERLE {erle:.1f} dB"


def similarity(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    return float(np.corrcoef(spectra(a).ravel(), spectra(b).ravel())[0, 1])


def test_near_end_voice_is_kept() -> None:
    _, echo, near, _, out = run(EchoCanceller(delay_ms=round(DELAY_S * 1000)))
    alone = slice(12 * RATE + RATE // 4, 14 * RATE)  # near end only
    assert similarity(near[alone], out[alone]) >= 0.8
    assert abs(10 * math.log10(power(out[alone]) / power(near[alone]))) < 10  # not muted
    both = slice(14 * RATE + RATE // 4, 16 * RATE)  # double talk
    assert similarity(near[both], out[both]) > similarity(echo[both], out[both])


def test_without_far_end_feed_nothing_is_cancelled() -> None:
    """Guard against a test that cannot fail: with no reference, the echo stays."""
    canceller = EchoCanceller(noise_suppression=False, gain_control=False)
    far = 6000 * voice(140, 3.3, 1)
    out = np.concatenate(
        [canceller.near(far[i : i + CHUNK].astype(np.int16)) for i in range(0, far.size, CHUNK)]
    ).astype(np.float64)
    window = slice(5 * RATE, 11 * RATE)
    assert 10 * math.log10(power(far[window]) / power(out[window])) < 6
